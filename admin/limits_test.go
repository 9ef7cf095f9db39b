package admin

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tryLogin posts the console's login form from a fresh client and
// returns the status and body.
func (e *env) tryLogin(name, pw string) (int, string) {
	e.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(e.ts.URL+"/login?lang=en", url.Values{"name": {name}, "password": {pw}})
	if err != nil {
		e.t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 8<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String()
}

// TestStaleTokenDoesNotLockOutStaff: a job that keeps sending a revoked
// token from loopback (every staff member's source) gets 401 and then
// 429, while valid tokens, other mistyped tokens and console passwords
// from the same source are unaffected.
func TestStaleTokenDoesNotLockOutStaff(t *testing.T) {
	e := newEnv(t)
	stale, info, err := e.users.NewToken("viewer", "prometheus")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.users.RevokeToken("viewer", info.ID); err != nil {
		t.Fatal(err)
	}
	call := func(tok string) *http.Response {
		req, _ := http.NewRequest("GET", e.ts.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 30 {
		resp := call(stale)
		want := http.StatusUnauthorized
		if i >= 10 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("stale token, request %d: %s, want %d", i, resp.Status, want)
		}
		if want == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if resp := e.api(Admin, "GET", "/api/v1/me", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid admin token after a stale token's failures: %s", resp.Status)
	}
	if resp := call(e.tokens[Viewer]); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid viewer token on /metrics: %s", resp.Status)
	}
	if resp := call("ppt_mistyped"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another bad token from the same source: %s, want 401", resp.Status)
	}
	if code, body := e.tryLogin("admin", testPassword); code != http.StatusSeeOther {
		t.Fatalf("console login after a stale token's failures: %d\n%s", code, body)
	}
	// The stale token is still refused after all that.
	if resp := call(stale); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stale token: %s", resp.Status)
	}
}

// TestTokenBeatsPasswordLimit: a source locked for passwords still
// serves valid tokens.
func TestTokenBeatsPasswordLimit(t *testing.T) {
	e := newEnv(t)
	for i := range 10 {
		if code, _ := e.tryLogin("nobody"+string(rune('a'+i)), "wrong password!"); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, code)
		}
	}
	if code, _ := e.tryLogin("admin", testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("11th login from the source: %d, want 429", code)
	}
	if resp := e.api(Viewer, "GET", "/api/v1/me", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid token from a source locked for passwords: %s", resp.Status)
	}
}

// hashProbe replaces argon2id with a stand-in that counts how many run
// at once and, while blocked, holds each caller until released.
type hashProbe struct {
	inside, most atomic.Int32
	calls        atomic.Int32
	block        atomic.Bool
	release      chan struct{}
	mu           sync.Mutex
	params       [][2]uint32 // time, memory of each call
}

func probeHashes(t *testing.T, block bool, wait time.Duration) *hashProbe {
	t.Helper()
	dummyHash() // made without hashing, but made before the probe counts
	p := &hashProbe{release: make(chan struct{})}
	p.block.Store(block)
	real, oldWait := idKey, hashWait
	idKey = func(pw, salt []byte, tm, mem uint32, threads uint8, n uint32) []byte {
		n1 := p.inside.Add(1)
		defer p.inside.Add(-1)
		for {
			m := p.most.Load()
			if n1 <= m || p.most.CompareAndSwap(m, n1) {
				break
			}
		}
		p.calls.Add(1)
		p.mu.Lock()
		p.params = append(p.params, [2]uint32{tm, mem})
		p.mu.Unlock()
		if p.block.Load() && n1 <= maxHashes {
			<-p.release
		}
		return real(pw, salt, tm, mem, threads, n)
	}
	hashWait = wait
	t.Cleanup(func() {
		p.open()
		idKey, hashWait = real, oldWait
	})
	return p
}

// open lets every blocked and future hash through.
func (p *hashProbe) open() {
	if p.block.CompareAndSwap(true, false) {
		close(p.release)
	}
}

// waitFor polls cond; the test's own deadline bounds it.
func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

// TestConcurrentLoginsBounded: a burst of parallel guesses at one
// account gets only the account's 5 attempts through the limiter (each
// attempt is counted before its hash), and at most maxHashes of those
// hash at once; the others wait for a slot.
func TestConcurrentLoginsBounded(t *testing.T) {
	e := newEnv(t)
	p := probeHashes(t, true, time.Hour)
	const n = 10
	var done, limited atomic.Int32
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Go(func() {
			code, _ := e.tryLogin("admin", "wrong password!")
			if code == http.StatusTooManyRequests {
				limited.Add(1)
			}
			done.Add(1)
			codes <- code
		})
	}
	// Every request is hashing, waiting for a slot or answered.
	waitFor(func() bool { return p.inside.Load()+hashWaiting.Load()+done.Load() == n })
	inside, waiting, answered := p.inside.Load(), hashWaiting.Load(), done.Load()
	p.open()
	wg.Wait()
	close(codes)
	if inside > maxHashes {
		t.Errorf("%d password hashes ran at once, want at most %d", inside, maxHashes)
	}
	if answered != 5 || limited.Load() != 5 || waiting != 5-inside {
		t.Errorf("hashing %d, waiting %d, answered %d (%d with 429): want 5 refused by the limit before hashing", inside, waiting, answered, limited.Load())
	}
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusUnauthorized] != 5 || count[http.StatusTooManyRequests] != 5 {
		t.Errorf("answers %v, want 5 × 401 and 5 × 429", count)
	}
	if m := p.most.Load(); m > maxHashes {
		t.Errorf("at most %d hashes at once, want %d", m, maxHashes)
	}
}

// TestLoginBusy: with every hashing slot taken and no time to wait, a
// login is answered 503 with a clear message, and is not counted as a
// failure.
func TestLoginBusy(t *testing.T) {
	e := newEnv(t)
	p := probeHashes(t, true, 0)
	var wg sync.WaitGroup
	for _, name := range []string{"viewer", "operator"} {
		wg.Go(func() { e.tryLogin(name, "wrong password!") })
	}
	waitFor(func() bool { return p.inside.Load() == maxHashes })
	for range 5 {
		code, body := e.tryLogin("admin", testPassword)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "busy checking other sign-ins") {
			t.Fatalf("login with every hashing slot taken: %d\n%s", code, body)
		}
	}
	p.open()
	wg.Wait()
	// Five busy answers did not use up admin's five attempts.
	if code, _ := e.tryLogin("admin", testPassword); code != http.StatusSeeOther {
		t.Fatalf("login once the slots are free: %d", code)
	}
	// The API reports a busy hasher as 503 too.
	p2 := probeHashes(t, true, 0)
	wg.Go(func() { e.tryLogin("viewer", "wrong password!") })
	wg.Go(func() { e.tryLogin("operator", "wrong password!") })
	waitFor(func() bool { return p2.inside.Load() == maxHashes })
	resp := e.api(Admin, "POST", "/api/v1/users", `{"name":"zed","role":"viewer","password":"a long password"}`)
	resp.Body.Close()
	p2.open()
	wg.Wait()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("adding an account while hashing is busy: %s", resp.Status)
	}
}

// TestUnknownAccountCostsTheSame: a login for an account that does not
// exist runs exactly the one argon2id check, at the cost of a real
// account's, from the first attempt on.
func TestUnknownAccountCostsTheSame(t *testing.T) {
	e := newEnv(t)
	p := probeHashes(t, false, time.Hour)
	e.tryLogin("admin", "wrong password!")
	e.tryLogin("no-such-account", "wrong password!")
	e.tryLogin("another-unknown", "wrong password!")
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.params) != 3 {
		t.Fatalf("%d hashes for three logins (one known, two unknown accounts), want 3", len(p.params))
	}
	if p.params[1] != p.params[0] || p.params[2] != p.params[0] {
		t.Fatalf("cost (time, memory) known %v, unknown %v %v", p.params[0], p.params[1], p.params[2])
	}
}

// TestLimiterTry: Try counts each attempt as it admits it, so exactly
// max concurrent attempts get through.
func TestLimiterTry(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	l := newLoginLimiter(5, time.Minute, func() time.Time { return now })
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if y, _, _ := l.Try("k"); y {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 {
		t.Fatalf("%d attempts admitted, want 5", ok.Load())
	}
	l.Undo("k")
	if y, _, n := l.Try("k"); !y || n != 5 {
		t.Fatalf("after Undo: %v, n=%d", y, n)
	}
	l.Succeed("k")
	if y, _, n := l.Try("k"); !y || n != 1 {
		t.Fatalf("after Succeed: %v, n=%d", y, n)
	}
}
