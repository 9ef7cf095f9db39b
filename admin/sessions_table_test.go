package admin

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSessionsAsText: asked for text/plain (as `parkportal sessions list`
// asks), the sessions API answers the table staff read in a terminal,
// one line per session the JSON lists, the visitor-chosen device name
// made terminal-safe; asked for JSON, or anything, it answers JSON.
func TestSessionsAsText(t *testing.T) {
	e := newEnv(t)
	get := func(accept, q string) (string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/sessions?q="+q, nil)
		req.Header.Set("Authorization", "Bearer "+e.tokens[Viewer])
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Accept %q: %d\n%s", accept, resp.StatusCode, b)
		}
		if resp.Header.Get("Vary") != "Accept" {
			t.Errorf("Accept %q: Vary = %q", accept, resp.Header.Get("Vary"))
		}
		return resp.Header.Get("Content-Type"), string(b)
	}
	ct, table := get("text/plain", "")
	if ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID  ") || !strings.Contains(lines[0], "RATE DOWN/UP") {
		t.Fatalf("want a header and 3 sessions:\n%s", table)
	}
	for i, want := range [][]string{
		{"s1", "+97433123456", "02:00:00:00:00:01", "198.51.100.11", "Amals-iPhone", "2h55m", "8mbit/8mbit", "128974848/5242880"},
		{"s2", "+97455123456", "02:00:00:00:00:02", "198.51.100.12", "هاتف_<b>سارة</b>"},
		{"s3", "+97466<script>", "198.51.100.13", " - "},
	} {
		for _, field := range want {
			if !strings.Contains(lines[i+1], field) {
				t.Errorf("line %d lacks %q:\n%s", i+1, field, table)
			}
		}
	}
	if _, table := get("text/plain", "iphone"); strings.Count(table, "\n") != 2 || !strings.Contains(table, "s1 ") {
		t.Errorf("the search is not applied to the table:\n%s", table)
	}
	for _, accept := range []string{"", "application/json", "*/*", "text/plain, application/json", "text/plain;q=0.5, application/json", "text/plain;q=x"} {
		if ct, body := get(accept, ""); ct != "application/json; charset=utf-8" || !strings.HasPrefix(body, "[") {
			t.Errorf("Accept %q: %s\n%s", accept, ct, body)
		}
	}
	if ct, _ := get("application/json;q=0.5, text/*", ""); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Accept preferring text/*: %s", ct)
	}
}

func TestTerminalSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Galaxy-S24", "Galaxy-S24"},
		{"", "-"},
		{"evil\x1b]0;pwned\x07", "evil?]0;pwned?"},
		{"two words\there", "two_words_here"},
		{"\u202eevil", "?evil"},
		{"abcdefghij", "abcde…"},
	} {
		max := 24
		if tc.in == "abcdefghij" {
			max = 5
		}
		if got := terminalSafe(tc.in, max); got != tc.want {
			t.Errorf("terminalSafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
