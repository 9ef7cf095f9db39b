package admin

import (
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/store"
)

// TestSessionsPagePlurals: the visitors page counts what it shows with
// the plural the number needs, and words each session's time left, in
// both languages.
func TestSessionsPagePlurals(t *testing.T) {
	e := newEnv(t)
	a := e.login("operator")
	cases := []struct {
		q      string
		ar, en string
	}{
		{"", "يُعرض 3 زوار", "3 visitors shown"},
		{"198.51.100.11", "يُعرض زائر واحد", "1 visitor shown"},
		{"02:00:00:00:00:0", "يُعرض 3 زوار", "3 visitors shown"},
		{"+974", "يُعرض 3 زوار", "3 visitors shown"},
		{"5512", "يُعرض زائر واحد", "1 visitor shown"},
	}
	for _, c := range cases {
		ar := a.get("/sessions?lang=ar&q=" + c.q)
		en := a.get("/sessions?lang=en&q=" + c.q)
		if !strings.Contains(ar, c.ar) || !strings.Contains(en, c.en) {
			t.Errorf("search %q: want %q / %q", c.q, c.ar, c.en)
		}
	}
	e.sessions.End("s3", store.ReasonKicked)
	if ar := a.get("/sessions?lang=ar"); !strings.Contains(ar, "يُعرض زائران") {
		t.Error("two sessions: no dual «يُعرض زائران»")
	}
	// The fake sessions end three hours after they started, five
	// minutes before now.
	if ar, en := a.get("/sessions?lang=ar"), a.get("/sessions?lang=en"); !strings.Contains(ar, ">ساعتان و55 دقيقة<") || !strings.Contains(en, ">2 hours and 55 minutes<") {
		t.Error("time left is not worded «ساعتان و55 دقيقة» / 2 hours and 55 minutes")
	}
	e.clock.Advance(2*time.Hour + 55*time.Minute - 40*time.Second)
	if ar, en := a.get("/sessions?lang=ar"), a.get("/sessions?lang=en"); !strings.Contains(ar, ">أقل من دقيقة<") || !strings.Contains(en, ">less than a minute<") {
		t.Error("40 s left is not «أقل من دقيقة» / less than a minute")
	}
}

// TestSettingsShowSMSSegments: under each PIN message the settings page
// says how many SMS segments it takes with the park's name, and warns
// when the name pushes it to two (every PIN then costs double).
func TestSettingsShowSMSSegments(t *testing.T) {
	e := newEnv(t)
	a := e.login("admin")
	ar, en := a.get("/settings?lang=ar"), a.get("/settings?lang=en")
	if !strings.Contains(ar, "رسالة الرمز مع اسم الحديقة: جزء واحد (UCS-2، ") || !strings.Contains(en, "PIN message with this park name: 1 SMS segment (GSM-7, ") {
		t.Fatalf("default site: no one-segment note\n%s", en)
	}
	if strings.Contains(en, `class="warn"`) {
		t.Error("default site: a warning")
	}
	site := e.settings.Get()
	site.NameAR = "حديقة الشيخ حمد بن خليفة آل ثاني للعائلات"
	site.NameEN = "Al Bidda Park ★"
	if _, err := e.settings.Update("admin", site); err != nil {
		t.Fatal(err)
	}
	ar, en = a.get("/settings?lang=ar"), a.get("/settings?lang=en")
	for _, want := range []string{
		"PIN message with this park name: 2 SMS segments (UCS-2, ",
		"This park name makes the PIN message 2 SMS segments: every PIN costs 2 times as much.",
		"“★” is not in the GSM-7 alphabet",
	} {
		if !strings.Contains(en, want) {
			t.Errorf("English page lacks %q", want)
		}
	}
	for _, want := range []string{"رسالة الرمز مع اسم الحديقة: جزءان", "اسم الحديقة هذا يجعل رسالة الرمز في جزأين، فتتضاعف تكلفة كل رمز."} {
		if !strings.Contains(ar, want) {
			t.Errorf("Arabic page lacks %q", want)
		}
	}
	// A rejected form is measured as typed.
	form := validSettingsForm()
	form.Set("rate_down", "fast")
	form.Set("sms_templates.en", "Your code is {pin}. "+strings.Repeat("Long text. ", 30))
	resp := a.post("/settings?lang=en", form, nil)
	defer resp.Body.Close()
	b := new(strings.Builder)
	io.Copy(b, resp.Body)
	if !strings.Contains(b.String(), "This PIN message takes 3 SMS segments: every PIN costs 3 times as much. Shorten the message.") {
		t.Errorf("a long message typed into a rejected form: no warning\n%s", b.String())
	}
}

// TestSMSFaultBanner: while the SMS provider refuses our account every
// console page says so, with the provider's code and since when, in the
// page's language; it goes once sending works.
func TestSMSFaultBanner(t *testing.T) {
	e := newEnv(t)
	a := e.login("viewer")
	var paused atomic.Bool
	paused.Store(true)
	since := e.clock.Now().Add(-10 * time.Minute)
	e.srv.SetSMSFault(func() (string, time.Time, bool) { return "20003", since, paused.Load() })
	for _, path := range []string{"/", "/sessions", "/settings", "/audit"} {
		en, ar := a.get(path+"?lang=en"), a.get(path+"?lang=ar")
		if !strings.Contains(en, "SMS sending is paused since "+since.Format("2006-01-02 15:04")+": the SMS provider refuses parkportal&#39;s account (20003)") {
			t.Errorf("%s: no English banner", path)
		}
		if !strings.Contains(ar, "إرسال الرسائل متوقف منذ") || !strings.Contains(ar, "20003") {
			t.Errorf("%s: no Arabic banner", path)
		}
	}
	paused.Store(false)
	if strings.Contains(a.get("/?lang=en"), "SMS sending is paused") {
		t.Error("the banner stays after sending works again")
	}
}
