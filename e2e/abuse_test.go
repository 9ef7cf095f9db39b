package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/parkwifi/parkportal/lab"
)

func problemCode(body string) string {
	const marker = `data-code="`
	i := strings.Index(body, marker)
	if i < 0 {
		return ""
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// outboxLines counts SMS in the lab outbox.
func (p *testPark) outboxLines(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(p.outbox())
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestSMSLimits: through the real daemon, a 4th SMS to one number within
// the hour is refused with a bilingual message saying when to retry; a
// number outside the site's allowlist is refused without any SMS sent.
func TestSMSLimits(t *testing.T) {
	p := newPark(t, 1)
	p.start(p.config(map[string]string{"site.sms_resend_gap": "0"}))
	v := p.Visitors[0]
	for i := 1; i <= 3; i++ {
		if r := lab.PostForm(v.NS, portalURL+"sms", map[string]string{"phone": "33123456"}); r.Code != 303 {
			t.Fatalf("SMS %d: got %d %s", i, r.Code, problemCode(r.Body))
		}
	}
	before := p.outboxLines(t)
	r := lab.PostForm(v.NS, portalURL+"sms", map[string]string{"phone": "33123456"})
	if r.Code != 429 || problemCode(r.Body) != "limit-per-number" {
		t.Fatalf("4th SMS within the hour: got %d %q, want 429 limit-per-number", r.Code, problemCode(r.Body))
	}
	if !strings.Contains(r.Body, "Try again in") || !strings.Contains(r.Body, "حاول مرة أخرى بعد") {
		t.Errorf("refusal does not say when to retry in both languages:\n%s", r.Body)
	}
	for _, n := range []string{"+44 7400 123456", "44123456" /* Qatari landline */} {
		r = lab.PostForm(v.NS, portalURL+"sms", map[string]string{"phone": n})
		if r.Code/100 != 4 {
			t.Errorf("number %q: got %d, want a refusal", n, r.Code)
		}
	}
	if after := p.outboxLines(t); after != before {
		t.Errorf("refused requests sent %d SMS", after-before)
	}
}

// TestPINGuesserLockedOut: a device guessing PINs voids the pending PIN
// after 5 wrong tries, and then hits the growing back-off: even a fresh
// PIN cannot be tried at once.
func TestPINGuesserLockedOut(t *testing.T) {
	p := newPark(t, 1)
	p.start(p.config(map[string]string{"site.sms_resend_gap": "0"}))
	v := p.Visitors[0]
	if r := lab.PostForm(v.NS, portalURL+"sms", map[string]string{"phone": "33123456"}); r.Code != 303 {
		t.Fatalf("SMS: %d", r.Code)
	}
	pin, err := lab.LastPIN(p.outbox(), "+97433123456")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for i := 0; i < 6; i++ {
		wrong := fmt.Sprintf("%06d", (atoi(pin)+1+i)%1_000_000)
		r := lab.PostForm(v.NS, portalURL+"pin", map[string]string{"pin": wrong})
		codes = append(codes, fmt.Sprintf("%d:%s", r.Code, problemCode(r.Body)))
	}
	joined := strings.Join(codes, " ")
	if !strings.Contains(joined, "limit-pin-backoff") && !strings.Contains(joined, "too-many-tries") {
		t.Fatalf("six wrong PINs were never stopped: %s", joined)
	}
	// The right PIN no longer works: it was voided or is behind the back-off.
	r := lab.PostForm(v.NS, portalURL+"pin", map[string]string{"pin": pin})
	if r.Code == 200 {
		t.Fatalf("after %s the real PIN still logged in", joined)
	}
	if online(v) {
		t.Fatal("the guesser got online")
	}
	t.Logf("wrong tries answered: %s; then the real PIN: %d %s", joined, r.Code, problemCode(r.Body))
}

func atoi(s string) int {
	n := 0
	fmt.Sscanf(s, "%d", &n)
	return n
}
