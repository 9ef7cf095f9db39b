package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/lab"
)

// adminToken creates a viewer account and an API token in the store at
// cfg before the daemon starts (so the password hashing happens in the
// CLI, not in the daemon whose memory is measured) and returns the token.
func (p *testPark) adminToken(t *testing.T, cfg string) string {
	t.Helper()
	add := exec.Command(binary, "admin", "add-user", "--config", cfg, "--role", "viewer", "soak")
	add.Stdin = strings.NewReader("soak-metrics-reader\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("admin add-user: %v\n%s", err, out)
	}
	out, err := exec.Command(binary, "admin", "token", "--config", cfg, "--label", "soak test", "soak").Output()
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// metrics fetches the daemon's Prometheus exposition from the admin
// listener (127.0.0.1:2052 in the gateway).
func (p *testPark) metrics(t *testing.T, token string) string {
	t.Helper()
	r := lab.Curl(p.Gateway, 5*time.Second, "http://127.0.0.1:2052/metrics", "-H", "Authorization: Bearer "+token)
	if r.Code != 200 {
		t.Fatalf("GET /metrics: %d (curl exit %d)", r.Code, r.Exit)
	}
	return r.Body
}

// soakSample is the daemon's state at one moment.
type soakSample struct {
	procStats
	Goroutines int
	Online     int
}

func (p *testPark) soakSample(t *testing.T, pid int, token string) soakSample {
	t.Helper()
	m := p.metrics(t, token)
	return soakSample{
		procStats:  sampleProc(t, pid),
		Goroutines: int(readMetric(m, "go_goroutines")),
		Online:     int(readMetric(m, "parkportal_visitors_online")),
	}
}

func (s soakSample) String() string {
	return fmt.Sprintf("VmRSS %d KiB, %d goroutines, %d threads, %d fds, %d online",
		s.RSSKiB, s.Goroutines, s.Threads, s.FDs, s.Online)
}

// soakCounts tallies what the visitors saw.
type soakCounts struct {
	iterations, probes, splashes, logins, logouts, stillOnline atomic.Int64
	probesReset                                                atomic.Int64
	// logoutsUnanswered: the session ended but curl got no HTTP answer.
	logoutsUnanswered atomic.Int64
	mu                sync.Mutex
	failures          []string
	unanswered        []string
}

func (c *soakCounts) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures = append(c.failures, fmt.Sprintf(format, args...))
}

// TestSoak: 60 devices, 4 at a time, for PARKPORTAL_SOAK (default 50 s,
// after a 15 s warm-up): each probes; a captive one loads the splash page
// and logs in by SMS; every other login logs out at once, the rest run
// into the 10 s session timeout. The daemon's RSS, goroutines and open
// files are sampled after the warm-up and at the end, each time once
// every session has ended: goroutines and files must be back where they
// were, and RSS near it.
func TestSoak(t *testing.T) {
	dur := 50 * time.Second
	if s := os.Getenv("PARKPORTAL_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 2*time.Hour {
			t.Fatalf("PARKPORTAL_SOAK=%q: want a duration up to 2h, e.g. 5m", s)
		}
		dur = d
	}
	p := newPark(t, 1)
	cfg := p.config(map[string]string{
		"site.session_timeout": "10s",
		// Each device logs in many times and every login is a new
		// number: the abuse caps would (rightly) stop that.
		"site.sms_resend_gap":   "0",
		"site.sms_per_device":   "100",
		"site.sms_daily_budget": "1000000",
	})
	token := p.adminToken(t, cfg)
	d := p.start(cfg)
	pid := d.pid(t)
	devs, err := lab.AddCrowd(p.Visitors[0], 20, 60)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range devs {
			os.Remove(fmt.Sprintf("/tmp/pp-cookies-%s-%s.txt", d.NS, d.Iface))
		}
	})

	var (
		c       soakCounts
		next    atomic.Int64
		numbers atomic.Int64
	)
	// run drives the workload until the deadline (and at most 100,000
	// iterations).
	run := func(until time.Time) {
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(until) && c.iterations.Add(1) <= 100_000 {
					dev := devs[int(next.Add(1))%len(devs)]
					soakVisit(p, dev, &c, &numbers)
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
	}
	// quiesce waits (at most 40 s) until every session has ended.
	quiesce := func() soakSample {
		var s soakSample
		for i := 0; i < 80; i++ {
			if s = p.soakSample(t, pid, token); s.Online == 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if s.Online != 0 {
			t.Fatalf("%d sessions still active 40 s after the load stopped (session timeout 10 s)", s.Online)
		}
		// Let keep-alive and closing connections finish.
		time.Sleep(time.Second)
		return p.soakSample(t, pid, token)
	}

	run(time.Now().Add(15 * time.Second))
	base := quiesce()
	t.Logf("after warm-up (%d logins): %s", c.logins.Load(), base)
	loginsBefore := c.logins.Load()

	deadline := time.Now().Add(dur)
	var peak soakSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(deadline)
	}()
	tick := time.NewTicker(dur / 5)
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			s := p.soakSample(t, pid, token)
			if s.RSSKiB > peak.RSSKiB {
				peak = s
			}
			t.Logf("during: %s", s)
		}
	}
	tick.Stop()
	end := quiesce()
	t.Logf("end, all sessions over (%d logins in the soak): %s", c.logins.Load()-loginsBefore, end)

	for i, f := range c.failures {
		if i == 10 {
			t.Errorf("... %d failures in all", len(c.failures))
			break
		}
		t.Error(f)
	}
	if c.logins.Load()-loginsBefore == 0 {
		t.Fatal("no login during the soak")
	}
	if end.Goroutines > base.Goroutines+5 {
		t.Errorf("goroutines %d → %d: not flat (leak?)", base.Goroutines, end.Goroutines)
	}
	if end.FDs > base.FDs+2 {
		t.Errorf("open files %d → %d: not back to baseline (leak?)", base.FDs, end.FDs)
	}
	if end.RSSKiB > base.RSSKiB*3/2 {
		t.Errorf("RSS %d KiB → %d KiB: more than half again the baseline", base.RSSKiB, end.RSSKiB)
	}

	// How the sessions ended, from the store (the daemon stopped, the
	// kernel state kept so the stop itself ends nothing).
	d.stop(t, syscall.SIGTERM)
	out, err := exec.Command(binary, "db", "export", "--format", "json", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("db export: %v", err)
	}
	reasons := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var s struct {
			State  string `json:"state"`
			Reason string `json:"end_reason"`
		}
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		reasons[s.State+"/"+s.Reason]++
	}
	if reasons["ended/user-request"] != int(c.logouts.Load()+c.logoutsUnanswered.Load()) {
		t.Errorf("store has %d sessions ended by logout, visitors logged out %d times (%d unanswered)", reasons["ended/user-request"], c.logouts.Load(), c.logoutsUnanswered.Load())
	}
	if n := c.logoutsUnanswered.Load(); n > 0 {
		t.Logf("WARNING: %d of %d logouts ended the session but got no HTTP answer: %v", n, n+c.logouts.Load(), c.unanswered)
	}
	if reasons["ended/session-timeout"] == 0 {
		t.Error("no session ended by the session timeout")
	}
	t.Logf("soak %s: %d visits, %d probes (%d reset by their session's end, probed again), %d splash pages, %d logins, %d logouts, %d probes of still-online devices; sessions in the store by end: %v",
		dur, c.iterations.Load(), c.probes.Load(), c.probesReset.Load(), c.splashes.Load(), c.logins.Load(), c.logouts.Load(), c.stillOnline.Load(), reasons)
	t.Logf("RSS %d → %d KiB (peak sample %d), goroutines %d → %d, fds %d → %d, threads %d → %d",
		base.RSSKiB, end.RSSKiB, peak.RSSKiB, base.Goroutines, end.Goroutines, base.FDs, end.FDs, base.Threads, end.Threads)
}

// soakVisit is one device's turn: probe; if captive, splash and SMS
// login; every other login logs out again at once.
func soakVisit(p *testPark, dev lab.Device, c *soakCounts, numbers *atomic.Int64) {
	args := dev.CurlArgs()
	r := lab.Curl(dev.NS, 10*time.Second, probeURL, args...)
	c.probes.Add(1)
	if r.Code == 0 && r.Exit == 56 {
		// Reset mid-request: the device's session ended while its probe
		// was open (the gate cuts an ended session's connections, and the
		// portal's stack resets what is left of one). Seen once, in a
		// soak of 3,125 probes; a phone probes again, and so does this.
		c.probesReset.Add(1)
		r = lab.Curl(dev.NS, 10*time.Second, probeURL, args...)
	}
	switch {
	case r.Code == 204:
		c.stillOnline.Add(1) // logged in on an earlier turn, not expired yet
		return
	case r.Code != 302:
		c.fail("%s probe: %d (curl exit %d)", dev.IP, r.Code, r.Exit)
		return
	}
	r = lab.Curl(dev.NS, 10*time.Second, portalURL, args...)
	c.splashes.Add(1)
	if r.Code != 200 {
		c.fail("%s splash: %d (curl exit %d)", dev.IP, r.Code, r.Exit)
		return
	}
	n := numbers.Add(1)
	phone := fmt.Sprintf("66%06d", n%1_000_000)
	if _, err := lab.Login(dev.NS, args, portalURL, p.outbox(), phone); err != nil {
		c.fail("%s: %v", dev.IP, err)
		return
	}
	c.logins.Add(1)
	if n%2 == 0 {
		return // left to expire
	}
	r = lab.PostFormWith(dev.NS, args, portalURL+"logout", map[string]string{"lang": "en"})
	switch {
	case r.Code == 0:
		// Seen about once in 1,300 logouts: the session ends but the
		// answer never arrives (curl exit code kept for diagnosis). A
		// known open problem outside this test; counted and reported, and
		// the session must still have ended (checked below and in the
		// store).
		c.logoutsUnanswered.Add(1)
		c.mu.Lock()
		c.unanswered = append(c.unanswered, fmt.Sprintf("%s curl exit %d after %s", dev.IP, r.Exit, r.Took.Round(time.Millisecond)))
		c.mu.Unlock()
	case r.Code != 200:
		c.fail("%s logout: %d", dev.IP, r.Code)
		return
	default:
		c.logouts.Add(1)
	}
	if r = lab.Curl(dev.NS, 10*time.Second, probeURL, args...); r.Code != 302 {
		c.fail("%s after logout: probe %d, want 302", dev.IP, r.Code)
	}
}
