package openwrt

// Memory on a router, measured on a 32-bit build: GOARCH=386 runs
// natively here and has the MIPS routers' word size, so its heap,
// stacks and runtime tables are what a mipsel router's would be (the
// code pages differ a little). The daemon runs in a lab park's gateway
// namespace with the init script's environment for a 64 MB router.
//
// Budgets (issue 14): `serve` idle VmRSS <= 12 MiB of which anonymous
// (heap, stacks, written data) <= 4 MiB; the peak (VmHWM, reset just
// before) of a 20,000-request burst <= 16 MiB; every CLI call <= 8 MiB
// peak, including the `config check` the init script runs before each
// start. The daemon's memory with 5,000 stored sessions is measured and
// logged. Each figure is logged as "MEMORY ..." for docs/BENCHMARKS.md.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/lab"
)

const (
	idleRSSBudget  = 12 << 10 // KiB
	idleAnonBudget = 4 << 10
	burstHWMBudget = 16 << 10
	cliBudget      = 8 << 10
	burstRequests  = 20000
	// The init script's environment for a 64 MB router (memlimit():
	// a quarter of RAM, at least 16 MiB).
	routerGOGC       = "50"
	routerGOMEMLIMIT = "16MiB"
)

// build386 builds the router binary for GOARCH=386 with the router's
// flags and tags. PARKPORTAL_MEMTEST_BINARY names a prebuilt one instead,
// to measure a build of another tree or with local changes.
func build386(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("PARKPORTAL_MEMTEST_BINARY"); bin != "" {
		t.Logf("measuring %s (PARKPORTAL_MEMTEST_BINARY), not a build of this tree", bin)
		return bin
	}
	bin := filepath.Join(t.TempDir(), "parkportal-386")
	args := append([]string{"build", "-trimpath", "-tags", routerTags, "-ldflags", "-s -w"}, routerGCFlags...)
	cmd := exec.Command(goCommand(), append(args, "-o", bin, "./cmd/parkportal")...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=386")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the 386 binary: %v\n%s", err, out)
	}
	return bin
}

// memStatus is a process's memory from /proc/PID/status, in KiB.
type memStatus struct{ RSS, Anon, File, HWM uint64 }

func (m memStatus) String() string {
	return fmt.Sprintf("VmRSS %d KiB (%.1f MiB; anon %d KiB = %.1f MiB, file %d KiB), VmHWM %d KiB (%.1f MiB)",
		m.RSS, mib(m.RSS), m.Anon, mib(m.Anon), m.File, m.HWM, mib(m.HWM))
}

func mib(kib uint64) float64 { return float64(kib) / 1024 }

func readStatus(t *testing.T, pid int) memStatus {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the daemon's status: %v", err)
	}
	var m memStatus
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n
		case "RssAnon":
			m.Anon = n
		case "RssFile":
			m.File = n
		case "VmHWM":
			m.HWM = n
		}
	}
	return m
}

// memPark is a lab park with the 386 daemon's files.
type memPark struct {
	*lab.Park
	t      *testing.T
	bin    string
	maxrss string // testdata/maxrss, built for this machine
	dir    string
}

// buildMaxRSS builds the small program the CLI calls run under, which
// reports their ru_maxrss (see testdata/maxrss for why not directly).
func buildMaxRSS(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "maxrss")
	cmd := exec.Command(goCommand(), "build", "-o", bin, "./deploy/openwrt/testdata/maxrss")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building maxrss: %v\n%s", err, out)
	}
	return bin
}

func newMemPark(t *testing.T) *memPark {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the daemon in a network namespace (CI runs as root)")
	}
	for _, tool := range []string{"ip", "iptables", "curl", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs it)", tool)
		}
	}
	bin := build386(t)
	p, err := lab.Build(fmt.Sprintf("m%d", os.Getpid()%100000), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Destroy(); err != nil {
			t.Errorf("removing the park: %v", err)
		}
	})
	return &memPark{Park: p, t: t, bin: bin, maxrss: buildMaxRSS(t), dir: t.TempDir()}
}

// config writes the lab configuration with this test's files, the
// per-device connection cap lifted for the burst (one namespace stands
// in for a crowd).
func (p *memPark) config(db string) string {
	p.t.Helper()
	var out []string
	for _, line := range strings.Split(config.LabDefault, "\n") {
		switch f := strings.Fields(line); {
		case len(f) >= 2 && f[0] == "option" && f[1] == "db_path":
			line = fmt.Sprintf("\toption db_path '%s'", db)
		case len(f) >= 2 && f[0] == "option" && f[1] == "outbox":
			line = fmt.Sprintf("\toption outbox '%s'", filepath.Join(p.dir, "outbox.jsonl"))
		case len(f) >= 2 && f[0] == "config" && f[1] == "parkportal":
			line += "\n\toption max_conns_per_device '64'"
		}
		out = append(out, line)
	}
	path := filepath.Join(p.dir, strings.TrimSuffix(filepath.Base(db), ".db")+".uci")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

const memPortalURL = "http://198.51.100.1:2050/"

// serve starts the daemon in the gateway as procd would on a 64 MB
// router and waits (bounded) until the portal answers a visitor.
func (p *memPark) serve(cfg string) (pid int, stop func()) {
	p.t.Helper()
	cmd := lab.Cmd(p.Gateway, p.bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "GOGC="+routerGOGC, "GOMEMLIMIT="+routerGOMEMLIMIT)
	out := new(lab.LockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if p.t.Failed() {
			p.t.Logf("daemon output:\n%s", out.String())
		}
	}
	p.t.Cleanup(stop)
	for i := 0; i < 150; i++ {
		if r := lab.Curl(p.Visitors[0].NS, time.Second, memPortalURL); r.Code == 200 {
			// `ip netns exec` execs in place: the pid is the daemon's.
			return cmd.Process.Pid, stop
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	p.t.Fatalf("the portal did not answer within 15 s; daemon output:\n%s", out.String())
	return 0, nil
}

// idle lets the daemon finish starting (first resync, first sweep) and
// returns its memory then.
func idle(t *testing.T, pid int) memStatus {
	t.Helper()
	time.Sleep(3 * time.Second)
	return readStatus(t, pid)
}

// resetPeak starts VmHWM afresh (proc(5), clear_refs "5"), so the next
// reading is the peak of what follows, not of the start or of an earlier
// argon2id hash in the daemon.
func resetPeak(t *testing.T, pid int) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("resetting the daemon's peak RSS: %v", err)
	}
}

var wrkCount = regexp.MustCompile(`(\d+) requests in`)

// cpuTicks is the process's user+system time in clock ticks (USER_HZ).
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st
}

// burst sends about n requests from the visitor to the daemon (pid)
// with wrk (2 threads, 50 connections, each thread stopping after n/2
// answers), logs the daemon's CPU time per request, and returns how many
// were answered and wrk's report. wrk itself always runs for its -d (its
// main thread sleeps that long), so 15 s bound the burst and its rate is
// not reported: here the daemon answers 20,000 requests in 1-2 s.
func (p *memPark) burst(pid int, url string, n int) (requests int, report string) {
	p.t.Helper()
	before := cpuTicks(p.t, pid)
	script := filepath.Join(p.dir, "burst.lua")
	lua := fmt.Sprintf(`local done = 0
function response(status, headers, body)
  done = done + 1
  if done >= %d then wrk.thread:stop() end
end
`, n/2)
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		p.t.Fatal(err)
	}
	out, err := lab.Cmd(p.Visitors[0].NS, "wrk", "-t2", "-c50", "-d15s", "--timeout", "5s", "-s", script, url).CombinedOutput()
	if err != nil {
		p.t.Fatalf("wrk: %v\n%s", err, out)
	}
	m := wrkCount.FindStringSubmatch(string(out))
	if m == nil {
		p.t.Fatalf("cannot read wrk's report:\n%s", out)
	}
	requests, _ = strconv.Atoi(m[1])
	ticks := cpuTicks(p.t, pid) - before
	p.t.Logf("MEMORY burst: %d requests, daemon CPU %.0f µs/request", requests, float64(ticks)*1e6/100/float64(max(requests, 1)))
	if strings.Contains(string(out), "Non-2xx") || strings.Contains(string(out), "Socket errors") {
		p.t.Errorf("the burst had failures:\n%s", out)
	}
	return requests, string(out)
}

// cli runs one CLI call of the 386 binary under maxrss and returns its
// peak resident set (wait4's ru_maxrss, KiB) and output.
func (p *memPark) cli(t *testing.T, stdin string, args ...string) (uint64, string) {
	t.Helper()
	report := filepath.Join(p.dir, "maxrss.out")
	os.Remove(report)
	cmd := exec.Command(p.maxrss, append([]string{report, p.bin}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("parkportal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no peak reported for parkportal %s: %v", strings.Join(args, " "), err)
	}
	kib, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("maxrss reported %q: %v", b, err)
	}
	return kib, string(out)
}

// checkCLI measures each call against budget (KiB).
func (p *memPark) checkCLI(t *testing.T, when string, budget uint64, calls [][]string) {
	t.Helper()
	for _, args := range calls {
		stdin := ""
		if len(args) > 1 && args[0] == "admin" && args[1] == "add-user" {
			stdin = "a long enough password\na long enough password\n"
		}
		peak, _ := p.cli(t, stdin, args...)
		t.Logf("MEMORY cli %s (%s): peak %d KiB (%.1f MiB)", strings.Join(args[:min(2, len(args))], " "), when, peak, mib(peak))
		if peak > budget {
			t.Errorf("parkportal %s (%s) peaked at %d KiB (%.1f MiB); the budget is %.1f MiB", strings.Join(args, " "), when, peak, mib(peak), mib(budget))
		}
	}
}

func TestMemoryBudgets(t *testing.T) {
	p := newMemPark(t)
	db := filepath.Join(p.dir, "park.db")
	cfg := p.config(db)

	// What the init script runs before every start.
	p.checkCLI(t, "before start", cliBudget, [][]string{{"config", "check", "--config", cfg}})

	pid, stop := p.serve(cfg)
	m := idle(t, pid)
	t.Logf("MEMORY serve idle: %s", m)
	if m.RSS > idleRSSBudget {
		t.Errorf("idle VmRSS %d KiB (%.1f MiB), budget %d MiB", m.RSS, mib(m.RSS), idleRSSBudget>>10)
	}
	if m.Anon > idleAnonBudget {
		t.Errorf("idle RssAnon %d KiB (%.1f MiB), budget %d MiB", m.Anon, mib(m.Anon), idleAnonBudget>>10)
	}

	// Staff commands while the daemon runs (through its admin socket).
	p.checkCLI(t, "daemon running", cliBudget, [][]string{
		{"admin", "add-user", "--config", cfg, "--role", "viewer", "amina"},
		{"admin", "list", "--config", cfg},
		{"site", "get", "--config", cfg},
		{"sessions", "list", "--config", cfg},
	})

	// A crowd's phones probing at once: the redirected probe (302).
	resetPeak(t, pid)
	n, report := p.burst(pid, "http://203.0.113.10/generate_204", burstRequests)
	m = readStatus(t, pid)
	t.Logf("MEMORY serve after a %d-request burst: %s", n, m)
	if n < burstRequests*9/10 {
		t.Errorf("the burst got %d answers, want about %d\n%s", n, burstRequests, report)
	}
	if m.HWM > burstHWMBudget {
		t.Errorf("VmHWM %d KiB (%.1f MiB) after the burst, budget %d MiB", m.HWM, mib(m.HWM), burstHWMBudget>>10)
	}
	stop()

	// The same commands with the daemon stopped: they open the store
	// (whose pages bbolt checks) and answer from it in the process.
	p.checkCLI(t, "daemon stopped", cliBudget, [][]string{
		{"db", "check", "--config", cfg},
		{"admin", "list", "--config", cfg},
		{"site", "get", "--config", cfg},
		{"sessions", "list", "--config", cfg},
		{"version"},
	})
	// Setting a password offline hashes it here: argon2id with 19 MiB
	// (OWASP's parameters, admin/users.go) is above the CLI budget by
	// design. Measured and logged, not held to it; with the daemon
	// running (above) the daemon hashes.
	peak, _ := p.cli(t, "another long password\nanother long password\n", "admin", "add-user", "--config", cfg, "--role", "viewer", "omar")
	t.Logf("MEMORY cli admin add-user (daemon stopped; argon2id 19 MiB, not budgeted): peak %d KiB (%.1f MiB)", peak, mib(peak))

	// 5,000 stored sessions, 200 of them active (restored into the
	// kernel at start).
	db5k := filepath.Join(p.dir, "sessions5000.db")
	active, ended := seedSessions(t, db5k, 5000, 200)
	cfg5k := p.config(db5k)
	pid, _ = p.serve(cfg5k)
	m = idle(t, pid)
	t.Logf("MEMORY serve with 5,000 stored sessions (%d active, %d ended), idle (VmHWM: the start): %s", active, ended, m)
	resetPeak(t, pid)
	n, _ = p.burst(pid, "http://203.0.113.10/generate_204", burstRequests)
	m = readStatus(t, pid)
	t.Logf("MEMORY serve with 5,000 stored sessions after a %d-request burst: %s", n, m)
	p.checkCLI(t, "5,000 sessions, daemon running", cliBudget, [][]string{{"sessions", "list", "--config", cfg5k}})
}

// seedSessions seeds the store at path (lab.SeedSessions) and checks
// that addrs sessions are active and the rest ended.
func seedSessions(t *testing.T, path string, n, addrs int) (active, ended int) {
	t.Helper()
	active, ended, err := lab.SeedSessions(path, n, addrs)
	if err != nil {
		t.Fatal(err)
	}
	if active+ended != n || active != addrs {
		t.Fatalf("seeded %d active + %d ended, want %d + %d", active, ended, addrs, n-addrs)
	}
	return active, ended
}
