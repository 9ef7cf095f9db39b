package promtext

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// gauges is a collector of plain families computed at each scrape.
type gauges struct {
	list []string
	fn   func(out []family) []family
}

func (g *gauges) names() []string               { return g.list }
func (g *gauges) collect(out []family) []family { return g.fn(out) }

func one(name, help, typ string, v float64) family {
	return family{name: name, help: help, typ: typ, metrics: []metric{{value: v}}}
}

// The runtime/metrics samples the Go collector reads, in one Read.
var runtimeSamples = []string{
	"/gc/gogc:percent",
	"/gc/gomemlimit:bytes",
	"/gc/heap/allocs:bytes",
	"/gc/heap/allocs:objects",
	"/gc/heap/frees:objects",
	"/gc/heap/goal:bytes",
	"/gc/heap/objects:objects",
	"/gc/heap/tiny/allocs:objects",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/metadata/mcache/free:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes",
	"/memory/classes/metadata/mspan/free:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes",
	"/memory/classes/metadata/other:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/other:bytes",
	"/memory/classes/profiling/buckets:bytes",
	"/memory/classes/total:bytes",
	"/sched/gomaxprocs:threads",
}

// goFamilies are the Go collector's families, with the client's names,
// types and help texts (client_golang's default NewGoCollector).
var goFamilies = []struct{ name, typ, help string }{
	{"go_gc_duration_seconds", typeSummary, "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."},
	{"go_gc_gogc_percent", typeGauge, "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent."},
	{"go_gc_gomemlimit_bytes", typeGauge, "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes."},
	{"go_goroutines", typeGauge, "Number of goroutines that currently exist."},
	{"go_info", typeGauge, "Information about the Go environment."},
	{"go_memstats_alloc_bytes", typeGauge, "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes."},
	{"go_memstats_alloc_bytes_total", typeCounter, "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes."},
	{"go_memstats_buck_hash_sys_bytes", typeGauge, "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes."},
	{"go_memstats_frees_total", typeCounter, "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects."},
	{"go_memstats_gc_sys_bytes", typeGauge, "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes."},
	{"go_memstats_heap_alloc_bytes", typeGauge, "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes."},
	{"go_memstats_heap_idle_bytes", typeGauge, "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes."},
	{"go_memstats_heap_inuse_bytes", typeGauge, "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes"},
	{"go_memstats_heap_objects", typeGauge, "Number of currently allocated objects. Equals to /gc/heap/objects:objects."},
	{"go_memstats_heap_released_bytes", typeGauge, "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes."},
	{"go_memstats_heap_sys_bytes", typeGauge, "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes."},
	{"go_memstats_last_gc_time_seconds", typeGauge, "Number of seconds since 1970 of last garbage collection."},
	{"go_memstats_mallocs_total", typeCounter, "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects."},
	{"go_memstats_mcache_inuse_bytes", typeGauge, "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes."},
	{"go_memstats_mcache_sys_bytes", typeGauge, "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes."},
	{"go_memstats_mspan_inuse_bytes", typeGauge, "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes."},
	{"go_memstats_mspan_sys_bytes", typeGauge, "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes."},
	{"go_memstats_next_gc_bytes", typeGauge, "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes."},
	{"go_memstats_other_sys_bytes", typeGauge, "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes."},
	{"go_memstats_stack_inuse_bytes", typeGauge, "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes."},
	{"go_memstats_stack_sys_bytes", typeGauge, "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes."},
	{"go_memstats_sys_bytes", typeGauge, "Number of bytes obtained from system. Equals to /memory/classes/total:byte."},
	{"go_sched_gomaxprocs_threads", typeGauge, "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads."},
	{"go_threads", typeGauge, "Number of OS threads created."},
}

// NewGoCollector returns the Go runtime's families as client_golang's
// default Go collector writes them, read from runtime/metrics (no
// stop-the-world) and debug.ReadGCStats.
func NewGoCollector() Collector {
	var mu sync.Mutex // one scrape at a time reads the shared sample buffer
	samples := make([]metrics.Sample, len(runtimeSamples))
	for i, n := range runtimeSamples {
		samples[i].Name = n
	}
	names := make([]string, len(goFamilies))
	for i, f := range goFamilies {
		names[i] = f.name
	}
	return &gauges{list: names, fn: func(out []family) []family {
		mu.Lock()
		metrics.Read(samples)
		v := make(map[string]float64, len(samples))
		for _, s := range samples {
			switch s.Value.Kind() {
			case metrics.KindUint64:
				v[s.Name] = float64(s.Value.Uint64())
			case metrics.KindFloat64:
				v[s.Name] = s.Value.Float64()
			}
		}
		mu.Unlock()
		var gc debug.GCStats
		gc.PauseQuantiles = make([]time.Duration, 5)
		debug.ReadGCStats(&gc)
		tiny := v["/gc/heap/tiny/allocs:objects"]
		heapObjects := v["/memory/classes/heap/objects:bytes"]
		heapInuse := heapObjects + v["/memory/classes/heap/unused:bytes"]
		heapIdle := v["/memory/classes/heap/released:bytes"] + v["/memory/classes/heap/free:bytes"]
		value := map[string]float64{
			"go_gc_gogc_percent":               v["/gc/gogc:percent"],
			"go_gc_gomemlimit_bytes":           v["/gc/gomemlimit:bytes"],
			"go_goroutines":                    float64(runtime.NumGoroutine()),
			"go_info":                          1,
			"go_memstats_alloc_bytes":          heapObjects,
			"go_memstats_alloc_bytes_total":    v["/gc/heap/allocs:bytes"],
			"go_memstats_buck_hash_sys_bytes":  v["/memory/classes/profiling/buckets:bytes"],
			"go_memstats_frees_total":          v["/gc/heap/frees:objects"] + tiny,
			"go_memstats_gc_sys_bytes":         v["/memory/classes/metadata/other:bytes"],
			"go_memstats_heap_alloc_bytes":     heapObjects,
			"go_memstats_heap_idle_bytes":      heapIdle,
			"go_memstats_heap_inuse_bytes":     heapInuse,
			"go_memstats_heap_objects":         v["/gc/heap/objects:objects"],
			"go_memstats_heap_released_bytes":  v["/memory/classes/heap/released:bytes"],
			"go_memstats_heap_sys_bytes":       heapInuse + heapIdle,
			"go_memstats_last_gc_time_seconds": float64(gc.LastGC.UnixNano()) / 1e9,
			"go_memstats_mallocs_total":        v["/gc/heap/allocs:objects"] + tiny,
			"go_memstats_mcache_inuse_bytes":   v["/memory/classes/metadata/mcache/inuse:bytes"],
			"go_memstats_mcache_sys_bytes":     v["/memory/classes/metadata/mcache/inuse:bytes"] + v["/memory/classes/metadata/mcache/free:bytes"],
			"go_memstats_mspan_inuse_bytes":    v["/memory/classes/metadata/mspan/inuse:bytes"],
			"go_memstats_mspan_sys_bytes":      v["/memory/classes/metadata/mspan/inuse:bytes"] + v["/memory/classes/metadata/mspan/free:bytes"],
			"go_memstats_next_gc_bytes":        v["/gc/heap/goal:bytes"],
			"go_memstats_other_sys_bytes":      v["/memory/classes/other:bytes"],
			"go_memstats_stack_inuse_bytes":    v["/memory/classes/heap/stacks:bytes"],
			"go_memstats_stack_sys_bytes":      v["/memory/classes/heap/stacks:bytes"] + v["/memory/classes/os-stacks:bytes"],
			"go_memstats_sys_bytes":            v["/memory/classes/total:bytes"],
			"go_sched_gomaxprocs_threads":      v["/sched/gomaxprocs:threads"],
		}
		threads, _ := runtime.ThreadCreateProfile(nil)
		value["go_threads"] = float64(threads)
		for _, f := range goFamilies {
			switch f.name {
			case "go_gc_duration_seconds":
				m := metric{count: uint64(gc.NumGC), sum: gc.PauseTotal.Seconds()}
				for i, q := range []float64{0, 0.25, 0.5, 0.75, 1} {
					m.quantiles = append(m.quantiles, quantile{q, gc.PauseQuantiles[i].Seconds()})
				}
				out = append(out, family{name: f.name, help: f.help, typ: f.typ, metrics: []metric{m}})
			case "go_info":
				out = append(out, family{name: f.name, help: f.help, typ: f.typ,
					metrics: []metric{{labels: []labelPair{{"version", runtime.Version()}}, value: 1}}})
			default:
				out = append(out, one(f.name, f.help, f.typ, value[f.name]))
			}
		}
		return out
	}}
}

// procFamilies are the process collector's families, as client_golang's
// writes them on Linux.
var procFamilies = []string{
	"process_cpu_seconds_total", "process_max_fds", "process_network_receive_bytes_total",
	"process_network_transmit_bytes_total", "process_open_fds", "process_resident_memory_bytes",
	"process_start_time_seconds", "process_virtual_memory_bytes", "process_virtual_memory_max_bytes",
}

// userHZ is the kernel's clock tick for /proc times (USER_HZ, 100 on
// every Linux architecture the routers use).
const userHZ = 100

// NewProcessCollector returns the process's families, read from
// /proc/self and getrlimit; a file that cannot be read leaves its
// families out of that scrape.
func NewProcessCollector() Collector {
	return &gauges{list: procFamilies, fn: func(out []family) []family {
		if st, err := readProcStat(); err == nil {
			out = append(out,
				one("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", typeCounter, float64(st.utime+st.stime)/userHZ),
				one("process_virtual_memory_bytes", "Virtual memory size in bytes.", typeGauge, float64(st.vsize)),
				one("process_resident_memory_bytes", "Resident memory size in bytes.", typeGauge, float64(st.rss*uint64(os.Getpagesize()))))
			if boot, err := bootTime(); err == nil {
				out = append(out, one("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", typeGauge, float64(boot)+float64(st.starttime)/userHZ))
			}
		}
		if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
			out = append(out, one("process_open_fds", "Number of open file descriptors.", typeGauge, float64(len(fds))))
		}
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
			out = append(out, one("process_max_fds", "Maximum number of open file descriptors.", typeGauge, float64(lim.Cur)))
		}
		if err := syscall.Getrlimit(syscall.RLIMIT_AS, &lim); err == nil {
			out = append(out, one("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", typeGauge, rlimitFloat(lim.Cur)))
		}
		if in, outOctets, err := readNetstat(); err == nil {
			out = append(out,
				one("process_network_receive_bytes_total", "Number of bytes received by the process over the network.", typeCounter, in),
				one("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network.", typeCounter, outOctets))
		}
		return out
	}}
}

// rlimitFloat writes "unlimited" the way /proc/self/limits readers do:
// the largest uint64, whatever width the platform's RLIM_INFINITY has.
func rlimitFloat(v uint64) float64 {
	if v == uint64(^uintptr(0)) || v == ^uint64(0) {
		return float64(^uint64(0))
	}
	return float64(v)
}

type procStat struct {
	utime, stime, starttime, vsize, rss uint64
}

// readProcStat reads the fields of /proc/self/stat the collector needs.
// The command name is in parentheses and may hold spaces, so fields are
// counted after its closing parenthesis.
func readProcStat() (procStat, error) {
	var st procStat
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return st, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, syscall.EINVAL
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15, starttime
	// 22, vsize 23, rss 24.
	if len(f) < 22 {
		return st, syscall.EINVAL
	}
	for _, p := range []struct {
		dst *uint64
		idx int
	}{{&st.utime, 11}, {&st.stime, 12}, {&st.starttime, 19}, {&st.vsize, 20}, {&st.rss, 21}} {
		if *p.dst, err = strconv.ParseUint(f[p.idx], 10, 64); err != nil {
			return st, err
		}
	}
	return st, nil
}

// bootTime is btime from /proc/stat.
func bootTime() (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, syscall.ENOENT
}

// readNetstat returns IpExt InOctets and OutOctets from
// /proc/self/net/netstat: the network namespace's IP traffic.
func readNetstat() (in, out float64, err error) {
	b, err := os.ReadFile("/proc/self/net/netstat")
	if err != nil {
		return 0, 0, err
	}
	var header []string
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "IpExt:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if header == nil {
			header = fields
			continue
		}
		for i, name := range header {
			if i >= len(fields) {
				break
			}
			v, perr := strconv.ParseFloat(fields[i], 64)
			if perr != nil {
				continue
			}
			switch name {
			case "InOctets":
				in = v
			case "OutOctets":
				out = v
			}
		}
		return in, out, nil
	}
	return 0, 0, syscall.ENOENT
}
