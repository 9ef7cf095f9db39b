package admin

import (
	"strings"
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
