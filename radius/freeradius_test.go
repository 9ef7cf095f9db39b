package radius

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// freeRADIUS runs a real FreeRADIUS 3.2 from testdata/freeradius on
// loopback ports for one test.
type freeRADIUS struct {
	t                  *testing.T
	dir                string // copied config
	acctDir            string
	authAddr, acctAddr string
	secret             string

	mu        sync.Mutex
	cmd       *exec.Cmd
	cmdExited chan struct{}
	out       *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// requireFreeRADIUS skips when the binaries are missing; CI installs them.
func requireFreeRADIUS(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"freeradius", "radclient"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install -y freeradius freeradius-utils): %v", bin, err)
		}
	}
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// newFreeRADIUS copies the config into a temporary directory, fills in
// paths, ports and the secret, and starts the server.
func newFreeRADIUS(t *testing.T, secret string) *freeRADIUS {
	t.Helper()
	requireFreeRADIUS(t)
	root := t.TempDir()
	f := &freeRADIUS{
		t:       t,
		dir:     filepath.Join(root, "conf"),
		acctDir: filepath.Join(root, "acct"),
		secret:  secret,
	}
	state := filepath.Join(root, "state")
	for _, d := range []string{f.acctDir, state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	authPort, acctPort := freeUDPPort(t), freeUDPPort(t)
	f.authAddr = fmt.Sprintf("127.0.0.1:%d", authPort)
	f.acctAddr = fmt.Sprintf("127.0.0.1:%d", acctPort)
	repl := strings.NewReplacer(
		"@STATEDIR@", state, "@CONFDIR@", f.dir, "@ACCTDIR@", f.acctDir,
		"@SECRET@", secret,
		"@AUTHPORT@", fmt.Sprint(authPort), "@ACCTPORT@", fmt.Sprint(acctPort),
	)
	src := filepath.Join("..", "testdata", "freeradius")
	err := filepath.WalkDir(src, func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(f.dir, rel)
		if de.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, []byte(repl.Replace(string(b))), 0o600)
	})
	if err != nil {
		t.Fatalf("copying FreeRADIUS config: %v", err)
	}
	t.Cleanup(f.stop)
	f.start()
	return f
}

// start runs `freeradius -X -d dir` and waits for it to be ready.
func (f *freeRADIUS) start() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cmd != nil {
		f.t.Fatal("FreeRADIUS already running")
	}
	f.out = &syncBuffer{}
	cmd := exec.Command("freeradius", "-X", "-d", f.dir)
	cmd.Stdout, cmd.Stderr = f.out, f.out
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("starting freeradius: %v", err)
	}
	f.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(f.out.String(), "Ready to process requests") {
		select {
		case <-exited:
			f.cmd = nil
			f.t.Fatalf("freeradius exited during start-up:\n%s", f.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("freeradius not ready after 20s:\n%s", f.out.String())
		}
	}
	f.cmdExited = exited
}

// stop kills the server (as a crash would) and waits for it.
func (f *freeRADIUS) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cmd == nil {
		return
	}
	_ = f.cmd.Process.Kill()
	select {
	case <-f.cmdExited:
	case <-time.After(10 * time.Second):
		f.t.Errorf("freeradius pid %d did not exit", f.cmd.Process.Pid)
	}
	if f.t.Failed() {
		f.t.Logf("freeradius output:\n%s", tail(f.out.String(), 8000))
	}
	f.cmd = nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// detailRecord is one request as FreeRADIUS's detail module wrote it.
type detailRecord map[string][]string

func (r detailRecord) get(name string) string {
	if v := r[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// detail reads every accounting record FreeRADIUS wrote so far.
func (f *freeRADIUS) detail() []detailRecord {
	f.t.Helper()
	fh, err := os.Open(filepath.Join(f.acctDir, "detail"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	return parseDetail(f.t, fh)
}

func parseDetail(t *testing.T, r io.Reader) []detailRecord {
	t.Helper()
	var out []detailRecord
	var cur detailRecord
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur != nil {
				out = append(out, cur)
			}
			cur = nil
		case !strings.HasPrefix(line, "\t"):
			cur = detailRecord{}
		default:
			name, value, ok := strings.Cut(strings.TrimSpace(line), " = ")
			if !ok || cur == nil {
				t.Fatalf("unexpected detail line %q", line)
			}
			cur[name] = append(cur[name], strings.Trim(value, `"`))
		}
	}
	if cur != nil {
		out = append(out, cur)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
