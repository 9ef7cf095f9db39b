package portal

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/limits"
)

// TestVisitorPagesPlurals: what a visitor reads with a count in it takes
// the plural the number needs, through the real handlers: the time left
// (ending in «أقل من دقيقة», never "0 min"), a limit's wait, the
// retention period.
func TestVisitorPagesPlurals(t *testing.T) {
	v := newVisitor(1)
	p := newParkWith(t, nil, func(o *Options) { o.Site.RetentionDays = 2 }, v)
	splash := p.get(t, v, "/?lang=ar").Body.String()
	if !strings.Contains(splash, "نحتفظ بهذه البيانات يومين ثم نحذفها.") {
		t.Errorf("retention of 2 days is not «يومين»:\n%s", splash)
	}
	for days, want := range map[int][2]string{
		1: {"يومًا واحدًا", "1 day"}, 3: {"3 أيام", "3 days"}, 30: {"30 يومًا", "30 days"}, 100: {"100 يوم", "100 days"},
	} {
		site := *p.srv.site()
		site.RetentionDays = days
		p.srv.SetSite(site)
		ar, en := p.get(t, v, "/?lang=ar").Body.String(), p.get(t, v, "/?lang=en").Body.String()
		if !strings.Contains(ar, "نحتفظ بهذه البيانات "+want[0]+" ثم نحذفها.") || !strings.Contains(en, "We keep them for "+want[1]+", then delete them.") {
			t.Errorf("retention %d days: want %q / %q", days, want[0], want[1])
		}
	}

	// A limit's wait, after «بعد»: the dual in the genitive.
	p.lim.set(func(l *fakeLimits) { l.sms = limits.Decision{Reason: limits.PerNumber, RetryAfter: 90 * time.Second} })
	w := p.sendPIN(t, v, "33123456")
	expect(t, "limited", w, http.StatusTooManyRequests, "limit-per-number")
	if b := w.Body.String(); !strings.Contains(b, "حاول مرة أخرى بعد دقيقتين.") || !strings.Contains(b, "Try again in 2 minutes.") {
		t.Errorf("a 90 s wait does not read «بعد دقيقتين» / in 2 minutes:\n%s", b)
	}
	p.lim.set(func(l *fakeLimits) { l.sms = limits.Decision{} })

	// Logged in: a fresh 4-hour session reads 4 hours, the last seconds
	// «أقل من دقيقة».
	p.sendPIN(t, v, "33123456")
	_, pin := p.sms.last(t)
	w = p.enterPIN(t, v, pin)
	if b := w.Body.String(); !strings.Contains(b, ">4 ساعات<") {
		t.Errorf("fresh session:\n%s", b)
	}
	p.clock.Advance(4*time.Hour - 59*time.Second)
	ar, en := p.get(t, v, "/?lang=ar").Body.String(), p.get(t, v, "/?lang=en").Body.String()
	if !strings.Contains(ar, ">أقل من دقيقة<") || !strings.Contains(en, ">less than a minute<") || strings.Contains(en, ">0 minutes<") {
		t.Errorf("59 s left:\n%s", en)
	}
}
