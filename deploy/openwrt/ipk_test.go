package openwrt

// These tests build the OpenWrt packages with build.sh and check what a
// router would get: the .ipk container opkg reads, the control fields, a
// binary for the right CPU, the scripts and their modes; they run the
// MIPS and arm64 binaries under qemu-user and lint the shell scripts.
//
// Tools: tar, gzip (always), ar (binutils) for the ar-container check,
// qemu-user-static for the emulated runs, shellcheck for the lint. A
// missing tool skips only the check that needs it, saying which Debian
// package brings it; CI installs them all.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

const testVersion = "1.2.3-test"

// target is one opkg architecture and what its binary must be.
type target struct {
	arch      string
	machine   elf.Machine
	class     elf.Class
	order     binary.ByteOrder
	qemu      string // qemu-user-static binary, "" = not run emulated
	softFloat bool   // MIPS: built with GOMIPS=softfloat
}

var targets = []target{
	{"mips_24kc", elf.EM_MIPS, elf.ELFCLASS32, binary.BigEndian, "qemu-mips-static", true},
	{"mipsel_24kc", elf.EM_MIPS, elf.ELFCLASS32, binary.LittleEndian, "qemu-mipsel-static", true},
	{"arm_cortex-a7_neon-vfpv4", elf.EM_ARM, elf.ELFCLASS32, binary.LittleEndian, "", false},
	{"aarch64_cortex-a53", elf.EM_AARCH64, elf.ELFCLASS64, binary.LittleEndian, "qemu-aarch64-static", false},
	{"x86_64", elf.EM_X86_64, elf.ELFCLASS64, binary.LittleEndian, "", false},
}

// Size budgets of issue 14, for a router with 16 MB of flash: the
// stripped mipsel binary at most 11 MiB (the stretch goal, 10 MiB, is
// logged), its ipk at most 4 MiB (opkg keeps the package's files on the
// compressed overlay, so the ipk's size is about what it costs in
// flash). deploy/openwrt/sizes.sh shows what each part adds;
// docs/BENCHMARKS.md ("Size and memory") has the history.
const (
	mipselBudget    = 11 << 20
	mipselStretch   = 10 << 20
	mipselIPKBudget = 4 << 20
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildLog  []byte
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// built runs build.sh once for all targets into a directory shared by the
// tests of this run, and returns it.
func built(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"tar", "gzip", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found; it is needed to build the packages", tool)
		}
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "parkportal-openwrt-test-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("sh", filepath.Join(repoRoot(t), "deploy/openwrt/build.sh"))
		cmd.Env = append(os.Environ(), "DIST="+buildDir, "VERSION="+testVersion, "OUTER=tgz", "GO="+goCommand())
		buildLog, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build.sh: %v\n%s", buildErr, buildLog)
	}
	return buildDir
}

// goCommand is the go that runs this test (go test puts its GOROOT's bin
// first on PATH), so build.sh uses the same toolchain and build cache.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// member is one file of an archive.
type member struct {
	name string
	mode int64
	uid  int
	gid  int
	typ  byte
	data []byte
}

// readTarGz reads every entry of a gzip'd tar.
func readTarGz(t *testing.T, b []byte) []member {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	tr := tar.NewReader(zr)
	var out []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		// opkg's tar reader takes ustar/GNU headers only: no PAX records.
		if h.Format == tar.FormatPAX {
			t.Errorf("%s: PAX header, which opkg cannot read", h.Name)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{strings.TrimPrefix(h.Name, "./"), h.Mode, h.Uid, h.Gid, h.Typeflag, data})
	}
}

// readAr reads a System V/GNU ar archive.
func readAr(t *testing.T, b []byte) []member {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		t.Fatalf("not an ar archive")
	}
	b = b[8:]
	var out []member
	for len(b) >= 60 {
		h := b[:60]
		if string(h[58:60]) != "`\n" {
			t.Fatalf("bad ar header %q", h)
		}
		var size int
		fmt.Sscan(strings.TrimSpace(string(h[48:58])), &size)
		name := strings.TrimRight(strings.TrimSpace(string(h[:16])), "/")
		b = b[60:]
		out = append(out, member{name: name, data: b[:size]})
		b = b[size+size%2:]
	}
	return out
}

func find(ms []member, name string) *member {
	for i := range ms {
		if ms[i].name == name {
			return &ms[i]
		}
	}
	return nil
}

func names(ms []member) []string {
	var n []string
	for _, m := range ms {
		n = append(n, m.name)
	}
	return n
}

// parseControl reads the RFC 822-style control file.
func parseControl(t *testing.T, b []byte) map[string]string {
	t.Helper()
	f := map[string]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") && last != "" {
			f[last] += "\n" + line
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Errorf("control line without a colon: %q", line)
			continue
		}
		last = k
		f[k] = strings.TrimSpace(v)
	}
	return f
}

// makefileDepends is the PARKPORTAL_DEPENDS list of the SDK Makefile.
func makefileDepends(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^PARKPORTAL_DEPENDS\s*\+=\s*(\S+)`)
	var deps []string
	for _, m := range re.FindAllSubmatch(b, -1) {
		deps = append(deps, string(m[1]))
	}
	return deps
}

// ipkContents opens one built package and returns its outer members,
// control archive and data archive.
func ipkContents(t *testing.T, path string) (outer, control, data []member) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(b, []byte("!<arch>\n")) {
		outer = readAr(t, b)
	} else {
		outer = readTarGz(t, b)
	}
	want := []string{"debian-binary", "control.tar.gz", "data.tar.gz"}
	if got := names(outer); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("members %q, want %q in that order", got, want)
	}
	if got := string(outer[0].data); got != "2.0\n" {
		t.Errorf("debian-binary = %q, want %q", got, "2.0\n")
	}
	return outer, readTarGz(t, outer[1].data), readTarGz(t, outer[2].data)
}

func TestPackages(t *testing.T) {
	dist := built(t)
	wantDeps := makefileDepends(t)
	if len(wantDeps) < 5 {
		t.Fatalf("Makefile has only %d PARKPORTAL_DEPENDS lines", len(wantDeps))
	}
	for _, tg := range targets {
		t.Run(tg.arch, func(t *testing.T) {
			path := filepath.Join(dist, fmt.Sprintf("parkportal_%s_%s.ipk", testVersion, tg.arch))
			outer, control, data := ipkContents(t, path)
			for _, m := range outer {
				if m.uid != 0 || m.gid != 0 {
					t.Errorf("outer %s owned by %d:%d, want root", m.name, m.uid, m.gid)
				}
			}
			checkControl(t, tg, control, wantDeps)
			checkData(t, tg, data)
		})
	}
}

func checkControl(t *testing.T, tg target, control []member, wantDeps []string) {
	c := find(control, "control")
	if c == nil {
		t.Fatalf("control.tar.gz has no control file: %q", names(control))
	}
	f := parseControl(t, c.data)
	for _, k := range []string{"Package", "Version", "Depends", "Source", "SourceName", "License",
		"Section", "Architecture", "Installed-Size", "Maintainer", "Description"} {
		if f[k] == "" {
			t.Errorf("control: %s missing or empty", k)
		}
	}
	if f["Package"] != "parkportal" || f["Version"] != testVersion || f["Architecture"] != tg.arch {
		t.Errorf("control: Package %q Version %q Architecture %q, want parkportal %s %s",
			f["Package"], f["Version"], f["Architecture"], testVersion, tg.arch)
	}
	if got, want := f["Depends"], strings.Join(wantDeps, ", "); got != want {
		t.Errorf("control: Depends %q, want the Makefile's list %q", got, want)
	}
	for _, d := range []string{"kmod-nft-core", "kmod-nft-nat", "kmod-sched-core", "kmod-ifb", "ca-bundle"} {
		if !strings.Contains(", "+f["Depends"]+",", ", "+d+",") {
			t.Errorf("control: Depends lacks %s", d)
		}
	}
	if cf := find(control, "conffiles"); cf == nil || strings.TrimSpace(string(cf.data)) != "/etc/config/parkportal" {
		t.Errorf("conffiles: want exactly /etc/config/parkportal, got %v", cf)
	}
	for _, s := range []string{"postinst", "prerm"} {
		m := find(control, s)
		if m == nil {
			t.Errorf("control.tar.gz has no %s", s)
			continue
		}
		if m.mode&0o111 != 0o111 {
			t.Errorf("%s mode %o, want executable", s, m.mode)
		}
		if !bytes.HasPrefix(m.data, []byte("#!/bin/sh\n")) {
			t.Errorf("%s does not start with #!/bin/sh", s)
		}
	}
	for _, m := range control {
		if m.uid != 0 || m.gid != 0 {
			t.Errorf("control %s owned by %d:%d, want root", m.name, m.uid, m.gid)
		}
	}
}

func checkData(t *testing.T, tg target, data []member) {
	modes := map[string]int64{
		"usr/bin/parkportal":                    0o755,
		"etc/init.d/parkportal":                 0o755,
		"etc/init.d/parkportal-gate":            0o755,
		"etc/config/parkportal":                 0o600,
		"etc/uci-defaults/90-parkportal":        0o755,
		"usr/share/parkportal/firewall.include": 0o755,
		"lib/upgrade/keep.d/parkportal":         0o644,
	}
	for name, mode := range modes {
		m := find(data, name)
		if m == nil {
			t.Errorf("data.tar.gz has no %s (has %q)", name, names(data))
			continue
		}
		if m.typ != tar.TypeReg || m.mode&0o7777 != mode {
			t.Errorf("%s: type %c mode %o, want a file with mode %o", name, m.typ, m.mode, mode)
		}
	}
	for _, m := range data {
		if m.uid != 0 || m.gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", m.name, m.uid, m.gid)
		}
	}
	if m := find(data, "etc/config/parkportal"); m != nil {
		if want, _ := os.ReadFile("files/parkportal.config"); !bytes.Equal(m.data, want) {
			t.Errorf("etc/config/parkportal differs from files/parkportal.config")
		}
	}
	bin := find(data, "usr/bin/parkportal")
	if bin == nil {
		return
	}
	checkELF(t, tg, bin.data)
}

func checkELF(t *testing.T, tg target, b []byte) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("binary is not ELF: %v", err)
	}
	defer f.Close()
	if f.Machine != tg.machine || f.Class != tg.class || f.ByteOrder != tg.order || f.Type != elf.ET_EXEC {
		t.Errorf("ELF %v %v %v %v, want %v %v %v executable", f.Machine, f.Class, f.ByteOrder, f.Type, tg.machine, tg.class, tg.order)
	}
	if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
		t.Errorf("binary not stripped (has .symtab or .debug_info)")
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has an interpreter: not static (CGO_ENABLED=0)")
		}
	}
	if tg.machine == elf.EM_MIPS {
		fp, ok := mipsFloatABI(f)
		if !ok {
			t.Logf("no .gnu.attributes Tag_GNU_MIPS_ABI_FP; float ABI not checked")
		} else if tg.softFloat && fp != 3 {
			t.Errorf("Tag_GNU_MIPS_ABI_FP = %d, want 3 (soft float, GOMIPS=softfloat)", fp)
		}
	}
	if tg.arch == "arm_cortex-a7_neon-vfpv4" {
		// GOARM=7: Go marks EABI5 and hard-float (VFP) in e_flags.
		const efARMEABI5, efARMABIFloatHard = 0x05000000, 0x400
		var flags uint32
		if f.Class == elf.ELFCLASS32 {
			flags = f.ByteOrder.Uint32(b[36:40])
		}
		if flags&0xff000000 != efARMEABI5 {
			t.Errorf("ARM e_flags %#x: want EABI version 5", flags)
		}
		if flags&efARMABIFloatHard == 0 {
			t.Logf("ARM e_flags %#x: no hard-float flag", flags)
		}
	}
}

// mipsFloatABI reads Tag_GNU_MIPS_ABI_FP from .gnu.attributes
// (1 double, 2 single, 3 soft float).
func mipsFloatABI(f *elf.File) (int, bool) {
	s := f.Section(".gnu.attributes")
	if s == nil {
		return 0, false
	}
	b, err := s.Data()
	if err != nil || len(b) < 1 || b[0] != 'A' {
		return 0, false
	}
	b = b[1:]
	for len(b) >= 4 {
		n := int(f.ByteOrder.Uint32(b))
		if n < 4 || n > len(b) {
			return 0, false
		}
		sec := b[4:n]
		b = b[n:]
		vendor, rest, ok := bytes.Cut(sec, []byte{0})
		if !ok || string(vendor) != "gnu" {
			continue
		}
		// Sub-sections: tag (1 = file), uint32 size, then tag/value ULEB128 pairs.
		for len(rest) >= 5 {
			tag, size := rest[0], int(f.ByteOrder.Uint32(rest[1:]))
			if size < 5 || size > len(rest) {
				return 0, false
			}
			attrs := rest[5:size]
			rest = rest[size:]
			if tag != 1 {
				continue
			}
			for len(attrs) > 0 {
				k, n1 := binary.Uvarint(attrs)
				if n1 <= 0 {
					return 0, false
				}
				v, n2 := binary.Uvarint(attrs[n1:])
				if n2 <= 0 {
					return 0, false
				}
				attrs = attrs[n1+n2:]
				if k == 4 { // Tag_GNU_MIPS_ABI_FP
					return int(v), true
				}
			}
		}
	}
	return 0, false
}

// extractBinary writes the package's binary for arch to dir.
func extractBinary(t *testing.T, dist, arch, dir string) string {
	t.Helper()
	_, _, data := ipkContents(t, filepath.Join(dist, fmt.Sprintf("parkportal_%s_%s.ipk", testVersion, arch)))
	m := find(data, "usr/bin/parkportal")
	if m == nil {
		t.Fatal("no usr/bin/parkportal")
	}
	p := filepath.Join(dir, "parkportal-"+arch)
	if err := os.WriteFile(p, m.data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEmulated(t *testing.T) {
	dist := built(t)
	conf, err := filepath.Abs("files/parkportal.config")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.qemu == "" {
			continue
		}
		t.Run(tg.arch, func(t *testing.T) {
			qemu, err := exec.LookPath(tg.qemu)
			if err != nil {
				t.Skipf("%s not found (apt-get install qemu-user-static)", tg.qemu)
			}
			bin := extractBinary(t, dist, tg.arch, t.TempDir())
			out, err := exec.Command(qemu, bin, "version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "parkportal "+testVersion) {
				t.Errorf("%s version: %v\n%s", tg.arch, err, out)
			}
			out, err = exec.Command(qemu, bin, "config", "check", "--config", conf).CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "config ok") {
				t.Errorf("%s config check: %v\n%s", tg.arch, err, out)
			}
			t.Logf("%s: %s", tg.arch, strings.TrimSpace(string(out)))
		})
	}
}

func TestSizes(t *testing.T) {
	dist := built(t)
	sizes, err := os.ReadFile(filepath.Join(dist, "SIZES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIZES.txt:\n%s", sizes)
	for _, tg := range targets {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tg.arch) + `\s+\d+`).Match(sizes) {
			t.Errorf("SIZES.txt has no line for %s", tg.arch)
		}
	}
	bin := extractBinary(t, dist, "mipsel_24kc", t.TempDir())
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	mib := float64(st.Size()) / (1 << 20)
	switch {
	case st.Size() > mipselBudget:
		t.Errorf("mipsel binary is %d bytes (%.2f MiB), over the %d MiB budget (deploy/openwrt/sizes.sh shows what each part adds)", st.Size(), mib, mipselBudget>>20)
	case st.Size() > mipselStretch:
		t.Logf("mipsel binary is %d bytes (%.2f MiB): within the %d MiB budget, above the %d MiB stretch goal", st.Size(), mib, mipselBudget>>20, mipselStretch>>20)
	default:
		t.Logf("mipsel binary is %d bytes (%.2f MiB), within the %d MiB stretch goal", st.Size(), mib, mipselStretch>>20)
	}
	ipk, err := os.Stat(filepath.Join(dist, fmt.Sprintf("parkportal_%s_mipsel_24kc.ipk", testVersion)))
	if err != nil {
		t.Fatal(err)
	}
	if ipk.Size() > mipselIPKBudget {
		t.Errorf("mipsel ipk is %d bytes (%.2f MiB), over the %d MiB budget", ipk.Size(), float64(ipk.Size())/(1<<20), mipselIPKBudget>>20)
	} else {
		t.Logf("mipsel ipk is %d bytes (%.2f MiB), within the %d MiB budget", ipk.Size(), float64(ipk.Size())/(1<<20), mipselIPKBudget>>20)
	}
}

// TestSizeFloor runs sizes.sh, which docs/BENCHMARKS.md quotes: it must
// keep building (the floor program uses each part the way parkportal
// does, so an API change would break it), and its table goes into the
// CI log. Checked: the floor is smaller than parkportal, and every part
// adds to it.
func TestSizeFloor(t *testing.T) {
	built(t) // warm build cache
	cmd := exec.Command("sh", filepath.Join(repoRoot(t), "deploy/openwrt/sizes.sh"))
	cmd.Env = append(os.Environ(), "GO="+goCommand())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sizes.sh: %v\n%s", err, out)
	}
	t.Logf("sizes.sh:\n%s", out)
	rows := regexp.MustCompile(`(?m)^(floor|parkportal).*?(\d+\.\d+) MiB(?:\s+\+\s*(\d+\.\d+) MiB)?`).FindAllStringSubmatch(string(out), -1)
	if len(rows) != 8 {
		t.Fatalf("sizes.sh printed %d size rows, want 8 (floor, six parts, parkportal)", len(rows))
	}
	for _, r := range rows[1:] {
		if r[3] == "" || r[3] == "0.00" {
			t.Errorf("row %q: adds nothing to the floor", r[0])
		}
	}
}

// TestArContainer checks the OUTER=ar form (upstream opkg/Yocto) for one
// target with GNU ar itself, so the writer is not only checked by our
// own reader.
func TestArContainer(t *testing.T) {
	ar, err := exec.LookPath("ar")
	if err != nil {
		t.Skip("ar not found (apt-get install binutils)")
	}
	built(t) // the build cache is warm after this
	dist := t.TempDir()
	cmd := exec.Command("sh", filepath.Join(repoRoot(t), "deploy/openwrt/build.sh"), "x86_64")
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION="+testVersion, "OUTER=ar", "GO="+goCommand())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh OUTER=ar: %v\n%s", err, out)
	}
	path := filepath.Join(dist, fmt.Sprintf("parkportal_%s_x86_64.ipk", testVersion))
	out, err := exec.Command(ar, "t", path).Output()
	if err != nil {
		t.Fatalf("ar t: %v", err)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "debian-binary control.tar.gz data.tar.gz" {
		t.Errorf("ar t: %q", got)
	}
	ipkContents(t, path)
}

func TestShellScripts(t *testing.T) {
	scripts := []string{"files/parkportal.init", "files/parkportal-gate.init", "files/parkportal.uci-defaults", "files/firewall.include",
		"files/postinst", "files/prerm", "build.sh"}
	for _, s := range scripts {
		if out, err := exec.Command("sh", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
		if st, err := os.Stat(s); err != nil || st.Mode()&0o111 == 0 && s == "build.sh" {
			t.Errorf("%s: missing or not executable", s)
		}
	}
	if _, err := exec.LookPath("busybox"); err == nil {
		for _, s := range scripts {
			if out, err := exec.Command("busybox", "ash", "-n", s).CombinedOutput(); err != nil {
				t.Errorf("busybox ash -n %s: %v\n%s", s, err, out)
			}
		}
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck not found (apt-get install shellcheck)")
	}
	// -s sh: POSIX sh, no bashisms, which is what busybox ash runs.
	args := append([]string{"-s", "sh"}, scripts...)
	if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck -s sh: %v\n%s", err, out)
	}
}

// TestDefaultConfigCheck runs the native `config check` on the shipped
// default, so a new required option or a typo in it fails here even
// without qemu.
func TestDefaultConfigCheck(t *testing.T) {
	root := repoRoot(t)
	conf, _ := filepath.Abs("files/parkportal.config")
	cmd := exec.Command(goCommand(), "run", "./cmd/parkportal", "config", "check", "--config", conf)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "config ok") {
		t.Errorf("config check: %v\n%s", err, out)
	}
}
