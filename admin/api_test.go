package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestAPIPermissions calls every endpoint without a token and as each
// role: below the endpoint's role it is refused, at or above it works.
func TestAPIPermissions(t *testing.T) {
	tests := []struct {
		method, path, body string
		need               Role
		ok                 int
	}{
		{"GET", "/api/v1/me", "", Viewer, 200},
		{"GET", "/api/v1/dashboard", "", Viewer, 200},
		{"GET", "/api/v1/sessions?q=3312", "", Viewer, 200},
		{"POST", "/api/v1/sessions/s1/extend", `{"by":"30m"}`, Operator, 200},
		{"POST", "/api/v1/sessions/s1/rate", `{"down":"4mbit"}`, Operator, 200},
		{"POST", "/api/v1/sessions/s2/kick", "", Operator, 200},
		{"GET", "/api/v1/site", "", Viewer, 200},
		{"PATCH", "/api/v1/site", `{"rate_down":"6mbit"}`, Admin, 200},
		{"PUT", "/api/v1/site", "SITE", Admin, 200},
		{"GET", "/api/v1/site/export", "", Viewer, 200},
		{"POST", "/api/v1/site/import?keep_names=1", "PROFILE", Admin, 200},
		{"GET", "/api/v1/audit?limit=5", "", Viewer, 200},
		{"GET", "/api/v1/users", "", Admin, 200},
		{"POST", "/api/v1/users", `{"name":"NEW","role":"viewer","password":"a long password"}`, Admin, 201},
		{"PATCH", "/api/v1/users/NEW", `{"role":"operator"}`, Admin, 200},
		{"GET", "/api/v1/users/NEW/tokens", "", Admin, 200},
		{"POST", "/api/v1/users/NEW/tokens", `{"label":"ci"}`, Admin, 201},
		{"DELETE", "/api/v1/users/NEW/tokens/00000000", "", Admin, 204},
		{"DELETE", "/api/v1/users/NEW", "", Admin, 204},
		{"GET", "/metrics", "", Viewer, 200},
	}
	for _, tt := range tests {
		for _, role := range []Role{"", Viewer, Operator, Admin} {
			e := newEnv(t)
			body := tt.body
			switch body {
			case "SITE":
				b, _ := json.Marshal(e.settings.Get())
				body = strings.Replace(string(b), `"rate_up":"8mbit"`, `"rate_up":"2mbit"`, 1)
			case "PROFILE":
				var sb strings.Builder
				e.settings.Export(&sb)
				body = sb.String()
			}
			path := strings.ReplaceAll(tt.path, "NEW", "zed")
			body = strings.ReplaceAll(body, "NEW", "zed")
			if strings.Contains(path, "/users/zed") {
				if err := e.users.Add("zed", Viewer, testPassword); err != nil {
					t.Fatal(err)
				}
			}
			resp := e.api(role, tt.method, path, body)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := tt.ok
			switch {
			case role == "":
				want = http.StatusUnauthorized
			case !role.Allows(tt.need):
				want = http.StatusForbidden
			}
			if resp.StatusCode != want {
				t.Errorf("%s %s as %q: %s, want %d\n%s", tt.method, tt.path, role, resp.Status, want, b)
			}
		}
	}
}

func TestAPIActions(t *testing.T) {
	e := newEnv(t)
	resp := e.api(Operator, "POST", "/api/v1/sessions/s1/kick", "")
	resp.Body.Close()
	if got := e.sessions.Kicked(); len(got) != 1 || got[0] != "s1" {
		t.Fatalf("kicked = %v", got)
	}
	resp = e.api(Operator, "POST", "/api/v1/sessions/nope/kick", "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("kick unknown: %s", resp.Status)
	}
	resp = e.api(Operator, "POST", "/api/v1/sessions/s2/extend", `{"by":"45m"}`)
	resp.Body.Close()
	if e.sessions.extended["s2"] != 45*time.Minute {
		t.Fatalf("extended = %v", e.sessions.extended)
	}
	resp = e.api(Operator, "POST", "/api/v1/sessions/s2/extend", `{"by":"45m","x":1}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field in extend: %s", resp.Status)
	}
	resp = e.api(Operator, "POST", "/api/v1/sessions/s2/rate", `{"down":"1kbit"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("absurd rate: %s", resp.Status)
	}

	// A bad setting answers 422 with a message for that field.
	resp = e.api(Admin, "PATCH", "/api/v1/site", `{"rate_down":"0","walled_garden":["example.org"]}`)
	var ae apiError
	json.NewDecoder(resp.Body).Decode(&ae)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || ae.Fields["rate_down"] == "" || ae.Fields["walled_garden"] == "" {
		t.Fatalf("bad patch: %s %+v", resp.Status, ae)
	}
	resp = e.api(Admin, "PATCH", "/api/v1/site", `{"rate_down":"5mbit"}`)
	resp.Body.Close()
	recs, _ := e.settings.Audit(10, 0)
	if len(recs) != 1 || recs[0].Actor != "admin" || recs[0].Field != "rate_down" || recs[0].New != `"5mbit"` {
		t.Fatalf("audit = %+v", recs)
	}

	// Sessions search by phone digits, MAC and IP.
	for q, n := range map[string]int{"": 2, "00974 5512": 1, "02:00:00:00:00:02": 1, "198.51.100.1": 2, "zzz": 0} {
		resp = e.api(Viewer, "GET", "/api/v1/sessions?q="+url.QueryEscape(q), "")
		var list []SessionView
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list) != n {
			t.Errorf("search %q: %d sessions, want %d", q, len(list), n)
		}
	}

	// The last admin cannot demote itself.
	resp = e.api(Admin, "PATCH", "/api/v1/users/admin", `{"role":"viewer"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("demoting the last admin: %s", resp.Status)
	}

	// A new token works once created, and not after it is revoked.
	resp = e.api(Admin, "POST", "/api/v1/users/viewer/tokens", `{"label":"grafana"}`)
	var nt NewTokenResponse
	json.NewDecoder(resp.Body).Decode(&nt)
	resp.Body.Close()
	e.tokens["fresh"] = nt.Token
	if r := e.api("fresh", "GET", "/api/v1/me", ""); r.StatusCode != 200 {
		t.Fatalf("new token: %s", r.Status)
	}
	resp = e.api(Admin, "DELETE", "/api/v1/users/viewer/tokens/"+nt.ID, "")
	resp.Body.Close()
	if r := e.api("fresh", "GET", "/api/v1/me", ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked token: %s", r.Status)
	}

	resp = e.api(Viewer, "GET", "/metrics", "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`parkportal_visitors_online{site="park"} 2`, "parkportal_sms_sent_total", "parkportal_firewall_repairs_total", "parkportal_radius_queue_length", "parkportal_radius_dropped_records", `parkportal_visitor_bytes_total{direction="down",site="park"} 1.048576e+06`} {
		if !strings.Contains(string(b), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func TestLocalHandlerIsRoot(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("POST", "/api/v1/users", strings.NewReader(`{"name":"first","role":"admin","password":"a long password"}`))
	rec := newRecorder()
	e.srv.LocalHandler().ServeHTTP(rec, req)
	if rec.code != http.StatusCreated {
		t.Fatalf("local add-user: %d %s", rec.code, rec.body.String())
	}
	recs, _ := e.settings.Audit(1, 0)
	if len(recs) != 1 || recs[0].Actor != LocalRoot {
		t.Fatalf("audit = %+v", recs)
	}
	// The console is not served there.
	rec = newRecorder()
	e.srv.LocalHandler().ServeHTTP(rec, httpReq("GET", "/"))
	if rec.code != http.StatusNotFound {
		t.Fatalf("console on the local socket: %d", rec.code)
	}
}

// TestSessionDeviceNames: the API and the console show the device name
// and vendor class the visitor's device gave DHCP, escaped and isolated
// for direction, and the search finds them.
func TestSessionDeviceNames(t *testing.T) {
	e := newEnv(t)
	resp := e.api(Viewer, "GET", "/api/v1/sessions?q=iphone", "")
	var list []SessionView
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 1 || list[0].ID != "s1" || list[0].Hostname != "Amals-iPhone" || list[0].Vendor != "MSFT 5.0" {
		t.Fatalf("sessions?q=iphone = %+v", list)
	}
	resp = e.api(Viewer, "GET", "/api/v1/sessions?q=s3", "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"hostname": ""`) || !strings.Contains(string(b), `"vendor": ""`) {
		t.Fatalf("a session without a device name lacks the fields:\n%s", b)
	}
	v := e.login("viewer")
	page := v.get("/sessions?q=" + url.QueryEscape("سارة"))
	if !strings.Contains(page, `<bdi dir="auto" class="devname">هاتف &lt;b&gt;سارة&lt;/b&gt;</bdi>`) || strings.Contains(page, "<b>سارة") {
		t.Fatalf("device name not shown escaped in its own direction:\n%s", page)
	}
	if strings.Contains(page, `id="s-s1"`) {
		t.Fatal("the search for a device name matched another session")
	}
	page = v.get("/sessions?q=msft")
	if !strings.Contains(page, `<bdi dir="auto" class="devname">Amals-iPhone</bdi>`) || !strings.Contains(page, `<bdi dir="auto" class="small">MSFT 5.0</bdi>`) {
		t.Fatalf("device name and vendor not shown:\n%s", page)
	}
}

// TestLocalReadsAsRouted: the reads the local API answers without its
// routes (serveLocal) answer as the routes do, and every other request
// still goes through them.
func TestLocalReadsAsRouted(t *testing.T) {
	e := newEnv(t)
	routed := securityHeaders(e.srv.localRoutes())
	for _, target := range []string{
		"/api/v1/users", "/api/v1/site", "/api/v1/sessions", "/api/v1/sessions?q=iphone", "/api/v1/sessions?q=nothing",
		"/api/v1/users/", "/api/v1/site/export", "/api/v1/me", "/api/v1/nothing",
	} {
		for _, method := range []string{"GET", "HEAD", "POST"} {
			// Empty bodies: no POST here changes anything, so both
			// answer the same state.
			for _, accept := range []string{"", "text/plain"} {
				want, got := newRecorder(), newRecorder()
				req := func() *http.Request {
					r, _ := http.NewRequest(method, target, strings.NewReader(""))
					if accept != "" {
						r.Header.Set("Accept", accept)
					}
					return r
				}
				routed.ServeHTTP(want, req())
				e.srv.LocalHandler().ServeHTTP(got, req())
				if got.code != want.code || got.body.String() != want.body.String() || !reflect.DeepEqual(got.h, want.h) {
					t.Errorf("%s %s (Accept %q): local %d %v\n%s\nrouted %d %v\n%s", method, target, accept, got.code, got.h, got.body.String(), want.code, want.h, want.body.String())
				}
			}
		}
	}
	if e.srv.localRead("/api/v1/users") == nil || e.srv.localRead("/api/v1/users/amina") != nil {
		t.Fatal("localRead answers the wrong paths")
	}
}
