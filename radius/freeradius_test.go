package radius

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/lab"
)

// freeRADIUS runs a real FreeRADIUS 3.2 from testdata/freeradius on
// loopback ports for one test (the server harness is lab's, shared with
// the end-to-end tests).
type freeRADIUS struct {
	t                  *testing.T
	srv                *lab.FreeRADIUS
	authAddr, acctAddr string
	secret             string
	root               string
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

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func newFreeRADIUS(t *testing.T, secret string) *freeRADIUS {
	t.Helper()
	return newFreeRADIUSWith(t, secret, nil)
}

// newFreeRADIUSWith lets edit change the copied configuration (under
// root/conf) before the server starts.
func newFreeRADIUSWith(t *testing.T, secret string, edit func(root string)) *freeRADIUS {
	t.Helper()
	requireFreeRADIUS(t)
	authPort, acctPort := freeUDPPort(t), freeUDPPort(t)
	root := t.TempDir()
	srv, err := lab.NewFreeRADIUS(lab.FreeRADIUSConfig{
		Source: filepath.Join("..", "testdata", "freeradius"), Root: root,
		Secret: secret, AuthPort: authPort, AcctPort: acctPort,
	})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(root)
	}
	f := &freeRADIUS{t: t, srv: srv, secret: secret, root: root,
		authAddr: fmt.Sprintf("127.0.0.1:%d", authPort), acctAddr: fmt.Sprintf("127.0.0.1:%d", acctPort)}
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			t.Logf("freeradius output:\n%s", srv.Output(8000))
		}
	})
	f.start()
	return f
}

func (f *freeRADIUS) start() {
	f.t.Helper()
	if err := f.srv.Start(); err != nil {
		f.t.Fatal(err)
	}
}

// stop kills the server (as a crash would) and waits for it.
func (f *freeRADIUS) stop() {
	if err := f.srv.Stop(); err != nil {
		f.t.Error(err)
	}
}

type detailRecord = lab.DetailRecord

// detail reads every accounting record FreeRADIUS wrote so far.
func (f *freeRADIUS) detail() []detailRecord {
	f.t.Helper()
	recs, err := f.srv.Detail()
	if err != nil {
		f.t.Fatal(err)
	}
	return recs
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
