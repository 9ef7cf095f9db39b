package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/lab"
)

// binary is the parkportal executable under test, built once.
var binary string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipping: these tests need root (network namespaces, iptables); CI runs them as root")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "pp-e2e-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "parkportal")
	// -tags lab: the tests run the lab's internet host from this binary
	// (`parkportal lab-internet`), which router builds leave out; and the
	// router's own tag (deploy/openwrt/build.sh), so the daemon under test
	// speaks HTTP as it does on a router.
	out, err := exec.Command("go", "build", "-tags", "lab,nethttpomithttp2", "-o", binary, "github.com/parkwifi/parkportal/cmd/parkportal").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building parkportal: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and firewall rules")
	}
	for _, tool := range []string{"ip", "iptables", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install -y iproute2 iptables curl)", tool)
		}
	}
}

var prefixSeq struct {
	sync.Mutex
	n int
}

// newPark builds a park whose names are unique to this test run and
// removes it when the test ends, also on failure.
func newPark(t *testing.T, visitors int) *testPark {
	t.Helper()
	needRoot(t)
	prefixSeq.Lock()
	prefixSeq.n++
	prefix := fmt.Sprintf("e%d%c", os.Getpid()%10000, 'a'+prefixSeq.n%26)
	prefixSeq.Unlock()
	p, err := lab.Build(prefix, visitors)
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPark{Park: p, t: t, dir: t.TempDir()}
	t.Cleanup(func() {
		if err := p.Destroy(); err != nil {
			t.Errorf("removing park: %v", err)
		}
	})
	inet := lab.Cmd(p.Internet, binary, "lab-internet")
	if err := inet.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inet.Process.Kill(); inet.Wait() })
	return tp
}

type testPark struct {
	*lab.Park
	t   *testing.T
	dir string
	// env is added to the daemon's environment (start).
	env []string
}

// config writes a lab config whose state lives in the test's directory.
// overrides maps "section.option" (section: parkportal, site, sms or
// radius) to a value; existing options are replaced, others added to
// their section (created if the lab config has none). A value "list X"
// is written as a UCI list entry.
func (p *testPark) config(overrides map[string]string) string {
	p.t.Helper()
	all := map[string]string{
		"parkportal.db_path": filepath.Join(p.dir, "parkportal.db"),
		"sms.outbox":         p.outbox(),
	}
	if e2eBackend != "" {
		all["parkportal.firewall_backend"] = e2eBackend
	}
	for k, v := range overrides {
		all[k] = v
	}
	used := map[string]bool{}
	var out []string
	section := ""
	for _, line := range strings.Split(config.LabDefault, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "config" {
			section = f[1]
			out = append(out, line)
			for k, v := range all {
				if sec, opt, _ := strings.Cut(k, "."); sec == section && !strings.Contains(config.LabDefault, "option "+opt+" ") {
					out = append(out, uciLine(opt, v))
					used[k] = true
				}
			}
			continue
		}
		if len(f) >= 3 && f[0] == "option" {
			if v, ok := all[section+"."+f[1]]; ok {
				line = fmt.Sprintf("\toption %s '%s'", f[1], v)
				used[section+"."+f[1]] = true
			}
		}
		out = append(out, line)
	}
	// Sections the lab config lacks.
	extra := map[string][]string{}
	for k, v := range all {
		if !used[k] {
			sec, opt, _ := strings.Cut(k, ".")
			extra[sec] = append(extra[sec], uciLine(opt, v))
		}
	}
	for sec, lines := range extra {
		out = append(out, "", "config "+sec)
		out = append(out, lines...)
	}
	path := filepath.Join(p.dir, "parkportal.uci")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

func uciLine(opt, v string) string {
	if item, ok := strings.CutPrefix(v, "list "); ok {
		return fmt.Sprintf("\tlist %s '%s'", opt, item)
	}
	return fmt.Sprintf("\toption %s '%s'", opt, v)
}

func (p *testPark) outbox() string { return filepath.Join(p.dir, "sms-outbox.jsonl") }

const portalURL = "http://198.51.100.1:2050/"

// daemon is one running parkportal.
type daemon struct {
	cmd *exec.Cmd
	out *lab.LockedBuffer
}

// start runs parkportal in the gateway and waits until the portal
// answers a visitor.
func (p *testPark) start(cfgPath string, extra ...string) *daemon {
	p.t.Helper()
	d := &daemon{out: new(lab.LockedBuffer)}
	d.cmd = lab.Cmd(p.Gateway, binary, append([]string{"serve", "--config", cfgPath}, extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if p.env != nil {
		d.cmd.Env = append(os.Environ(), p.env...)
	}
	if err := d.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
		if p.t.Failed() {
			p.t.Logf("parkportal output:\n%s", d.output())
		}
	})
	for i := 0; i < 100; i++ {
		if r := lab.Curl(p.Visitors[0].NS, time.Second, portalURL); r.Code == 200 {
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("portal did not come up; output:\n%s", d.output())
	return nil
}

func (d *daemon) output() string { return d.out.String() }

// stop sends sig and waits (bounded) for the daemon to exit.
func (d *daemon) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	d.cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-done
		t.Fatalf("parkportal did not stop within 10 s of %v", sig)
	}
}

// login walks visitor v through the SMS login and fails the test if it
// does not end connected.
func (p *testPark) login(v lab.Visitor, phone string) {
	p.t.Helper()
	if r, err := lab.Login(v.NS, lab.CookieJar(v.NS), portalURL, p.outbox(), phone); err != nil {
		p.t.Fatalf("%s: %v\n%s", v.NS, err, r.Body)
	}
}

// online reports whether visitor v reaches the internet host.
func online(v lab.Visitor) bool {
	return lab.Curl(v.NS, 2*time.Second, "http://"+lab.InternetIP.String()+"/generate_204").Code == 204
}

// gw runs a command in the gateway namespace and returns its output.
func (p *testPark) gw(name string, args ...string) (string, error) {
	out, err := lab.Cmd(p.Gateway, name, args...).CombinedOutput()
	return string(out), err
}
