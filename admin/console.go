package admin

import (
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parkwifi/parkportal/i18n"
	"github.com/parkwifi/parkportal/internal/tmpl"
	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/static"
)

// The pages are web/layout.html with one of the page files, escaped by
// html/template at build time into web/escaped (see package
// internal/tmpl for why: no template calls a method, so the linker can
// drop unused ones); go generate rewrites them and TestEscapedPages
// fails while they are stale.
//
//go:generate go test -run ^TestEscapedPages$ . -update
//go:embed web/escaped web/static
var webFS embed.FS

// pageNames are the console's pages, each rendered from "layout.html".
var pageNames = []string{"login", "dashboard", "sessions", "settings", "accounts", "audit", "error"}

// renderer executes a page; *tmpl.Set is the one the daemon uses (the
// tests put html/template in its place to compare the two).
type renderer interface {
	Execute(w io.Writer, name string, data any, bound tmpl.FuncMap) error
}

// pages are the console's pages, parsed on first use: a CLI call, which
// renders none, does not pay half a megabyte of parsing at every start.
var pages = sync.OnceValue(func() map[string]renderer {
	out := make(map[string]renderer, len(pageNames))
	for _, name := range pageNames {
		src, err := webFS.ReadFile("web/escaped/" + name + ".tmpl")
		if err != nil {
			panic(err)
		}
		set, err := tmpl.Parse(name, string(src), staticFuncs, boundFuncs...)
		if err != nil {
			panic(err)
		}
		out[name] = set
	}
	return out
})

// staticFuncs are the template funcs that do not depend on the request.
var staticFuncs = tmpl.FuncMap{
	"rate":     func(bps uint64) string { return settings.Rate(bps).String() },
	"bytes":    humanBytes,
	"bps":      humanRate,
	"percent":  func(f float64) string { return strconv.FormatFloat(f*100, 'f', 0, 64) + "%" },
	"lines":    func(l []string) string { return strings.Join(l, "\n") },
	"hasError": func(fe settings.FieldErrors, k string) bool { _, ok := fe[k]; return ok },
	"list":     func(v ...string) []string { return v },
	"dict":     dict,
}

// boundFuncs are the funcs each render binds to its page (see
// page.funcs): the page's language, time zone and user.
var boundFuncs = []string{"T", "N", "when", "can", "otherLang", "left", "fieldError"}

// dict builds a map from key, value pairs, to pass several values to a
// sub-template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict: keys must be strings")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// humanRate renders a measured throughput for reading, not for tc.
func humanRate(bps uint64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1f Gbit/s", float64(bps)/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", float64(bps)/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.0f kbit/s", float64(bps)/1e3)
	}
	return fmt.Sprintf("%d bit/s", bps)
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// page is what every template gets.
type page struct {
	loc       *time.Location
	Lang, Dir string
	User      *User
	CSRF      string
	Path      string
	OK        string // translated flash message
	Error     string
	// Alerts are banners about faults only staff can fix (see alerts).
	Alerts []string
	Data   any
}

// T translates key into the page's language, for the handlers' own
// messages (pages use the bound func T).
func (p *page) T(key string) string { return tr(p.Lang, key) }

// funcs are the template funcs bound to this page:
//
//	T "key"          the key's text in the page's language
//	N "key" n        a counted text with the plural n needs («يُعرض زائران»)
//	when t           t in the site's time zone, 2006-01-02 15:04
//	can "role"       whether the page's user has role
//	otherLang        the language the switch link offers
//	left seconds     a session's time left, worded («3 ساعات و59 دقيقة»)
//	fieldError fe k  field k's error in the page's language, "" if none
func (p *page) funcs() tmpl.FuncMap {
	return tmpl.FuncMap{
		"T":         p.T,
		"N":         func(key string, n int) string { return messages.N(p.Lang, key, n) },
		"when":      func(t time.Time) string { return t.In(p.loc).Format("2006-01-02 15:04") },
		"can":       func(role string) bool { return p.User != nil && p.User.Role.Allows(Role(role)) },
		"otherLang": func() string { return i18n.OtherLang(p.Lang) },
		"left":      func(sec int64) string { return i18n.Remaining(p.Lang, time.Duration(sec)*time.Second) },
		"fieldError": func(fe settings.FieldErrors, k string) string {
			if e, ok := fe[k]; ok {
				return e.In(p.Lang)
			}
			return ""
		},
	}
}

const langCookie = "pp_lang"

// langOf picks the console language: ?lang= (remembered in a cookie),
// then the cookie, then Arabic, the park's first language.
func langOf(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "ar" || l == "en" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "ar" || c.Value == "en") {
		return c.Value
	}
	return "ar"
}

func (s *Server) newPage(w http.ResponseWriter, r *http.Request) *page {
	p := &page{loc: s.o.Location, Lang: langOf(w, r), Dir: "ltr", Path: r.URL.Path}
	if p.Lang == "ar" {
		p.Dir = "rtl"
	}
	if ok := r.URL.Query().Get("ok"); ok != "" {
		if _, known := messages["ok."+ok]; known {
			p.OK = p.T("ok." + ok)
		}
	}
	return p
}

func (s *Server) render(w http.ResponseWriter, code int, name string, p *page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := pages()[name].Execute(w, "layout.html", p, p.funcs()); err != nil {
		s.log.Error("rendering console page", "page", name, "err", err)
	}
}

type consoleHandler func(http.ResponseWriter, *http.Request, *page)

// console wraps a page: it requires a console login with role need, and
// for POSTs the session's CSRF token (in addition to the cross-origin
// check every request passes).
func (s *Server) console(need Role, h consoleHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := s.newPage(w, r)
		_, cs := s.consoleSessionOf(r)
		if cs == nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		usr, err := s.o.Users.Get(cs.user)
		if err != nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		p.User, p.CSRF = usr, cs.csrf
		p.Alerts = s.alerts(p)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(cs.csrf)) != 1 {
				p.Error = p.T("err.csrf")
				s.render(w, http.StatusForbidden, "error", p)
				return
			}
		}
		if !usr.Role.Allows(need) {
			p.Error = p.T("err.forbidden")
			s.render(w, http.StatusForbidden, "error", p)
			return
		}
		h(w, r, p)
	})
}

func (s *Server) routesConsole(mux *http.ServeMux) {
	assets, _ := fs.Sub(webFS, "web/static")
	mux.Handle("GET /static/", static.Handler("/static/", assets, "private, max-age=3600"))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.loginPost)
	mux.HandleFunc("POST /logout", s.logout)
	mux.Handle("GET /{$}", s.console(Viewer, s.dashboardPage))
	mux.Handle("GET /sessions", s.console(Viewer, s.sessionsPage))
	mux.Handle("POST /sessions/{id}/kick", s.console(Operator, s.kickPost))
	mux.Handle("POST /sessions/{id}/extend", s.console(Operator, s.extendPost))
	mux.Handle("POST /sessions/{id}/rate", s.console(Operator, s.ratePost))
	mux.Handle("GET /settings", s.console(Viewer, s.settingsPage))
	mux.Handle("POST /settings", s.console(Admin, s.settingsPost))
	mux.Handle("GET /accounts", s.console(Admin, s.accountsPage))
	mux.Handle("POST /accounts", s.console(Admin, s.accountAdd))
	mux.Handle("POST /accounts/{name}", s.console(Admin, s.accountPost))
	mux.Handle("GET /audit", s.console(Viewer, s.auditPage))
}

type loginData struct {
	Name       string
	NoAccounts bool
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	p := s.newPage(w, r)
	n, _ := s.o.Users.Count()
	p.Data = loginData{NoAccounts: n == 0}
	s.render(w, http.StatusOK, "login", p)
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	p := s.newPage(w, r)
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	name := strings.TrimSpace(r.PostFormValue("name"))
	pw := r.PostFormValue("password")
	p.Data = loginData{Name: name}
	// Names are at most 32 bytes (CheckName); a longer one exists for no
	// account, and cutting it keeps the limiter's keys small under a
	// spray of long names.
	src, ukey := sourceKey(r), "user:"+name[:min(len(name), 64)]
	// Try counts the attempt as failed before the password is hashed, so
	// concurrent guesses cannot all pass the limit before one is counted.
	if ok, _, _ := s.limitSource.Try(src); !ok {
		p.Error = p.T("login.limited")
		s.render(w, http.StatusTooManyRequests, "login", p)
		return
	}
	if ok, _, _ := s.limitUser.Try(ukey); !ok {
		s.limitSource.Undo(src)
		p.Error = p.T("login.limited")
		s.render(w, http.StatusTooManyRequests, "login", p)
		return
	}
	usr, err := s.o.Users.Authenticate(r.Context(), name, pw)
	switch {
	case err == nil:
	case errors.Is(err, ErrBadLogin):
		// Counted by Try above.
		s.log.Warn("console login failed", "account", name, "source", r.RemoteAddr)
		p.Error = p.T("login.bad")
		s.render(w, http.StatusUnauthorized, "login", p)
		return
	case errors.Is(err, ErrBusy):
		// Not the visitor's failure: give the attempt back.
		s.limitSource.Undo(src)
		s.limitUser.Undo(ukey)
		s.log.Warn("console login refused: password hashing busy", "source", r.RemoteAddr)
		w.Header().Set("Retry-After", "2")
		p.Error = p.T("login.busy")
		s.render(w, http.StatusServiceUnavailable, "login", p)
		return
	default:
		s.limitSource.Undo(src)
		s.limitUser.Undo(ukey)
		s.log.Error("console login", "err", err)
		p.Error = p.T("login.bad")
		s.render(w, http.StatusUnauthorized, "login", p)
		return
	}
	// A correct password clears the account's record and its source's:
	// one person's typos must not leave the next person on the same
	// loopback or tunnel with fewer tries.
	s.limitUser.Succeed(ukey)
	s.limitSource.Succeed(src)
	if old, _ := s.consoleSessionOf(r); old != "" {
		s.endConsoleSession(old)
	}
	id, _ := s.newConsoleSession(usr.Name)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	s.log.Info("console login", "account", usr.Name, "source", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if id, cs := s.consoleSessionOf(r); cs != nil {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(cs.csrf)) == 1 {
			s.endConsoleSession(id)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// chart is an inline SVG line chart: Points is the polyline in a
// 0..W × 0..H box, computed here so the template only prints numbers.
type chart struct {
	Title  string
	Points string
	Max    string
	Empty  bool
}

const chartW, chartH = 288, 80

func makeChart(title string, samples []metrics.Sample, now time.Time, val func(metrics.Sample) float64, format func(float64) string) chart {
	c := chart{Title: title, Empty: len(samples) == 0}
	maxV := 0.0
	for _, s := range samples {
		maxV = max(maxV, val(s))
	}
	c.Max = format(maxV)
	if maxV == 0 {
		maxV = 1
	}
	start := now.Add(-24 * time.Hour)
	var b strings.Builder
	for i, s := range samples {
		x := s.Time.Sub(start).Seconds() / (24 * 3600) * chartW
		y := chartH - val(s)/maxV*(chartH-4)
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", min(max(x, 0), chartW), y)
	}
	c.Points = b.String()
	return c
}

type dashData struct {
	D      Dashboard
	Charts []chart
	UseDn  string
	UseUp  string
}

func usePercent(bits, capacity uint64) string {
	if capacity == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(bits)/float64(capacity)*100, 'f', 0, 64) + "%"
}

func (s *Server) dashboardPage(w http.ResponseWriter, r *http.Request, p *page) {
	d := s.dashboard()
	count := func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) }
	bits := func(f float64) string { return humanRate(uint64(f)) }
	p.Data = dashData{
		D: d,
		Charts: []chart{
			makeChart(p.T("dash.chart.online"), d.History, d.Now.Time, func(x metrics.Sample) float64 { return float64(x.Online) }, count),
			makeChart(p.T("dash.chart.throughput"), d.History, d.Now.Time, func(x metrics.Sample) float64 { return float64(x.BitsDown) }, bits),
			makeChart(p.T("dash.chart.logins"), d.History, d.Now.Time, func(x metrics.Sample) float64 { return float64(x.Logins) }, count),
		},
		UseDn: usePercent(d.Now.BitsDown, d.UplinkDn),
		UseUp: usePercent(d.Now.BitsUp, d.UplinkUp),
	}
	s.render(w, http.StatusOK, "dashboard", p)
}

type sessionsData struct {
	Q    string
	List []SessionView
}

func (s *Server) sessionsPage(w http.ResponseWriter, r *http.Request, p *page) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	list, err := s.listSessions(q)
	if err != nil {
		p.Error = err.Error()
	}
	p.Data = sessionsData{Q: q, List: list}
	s.render(w, http.StatusOK, "sessions", p)
}

// backToSessions redirects after an action (post/redirect/get), keeping
// the search.
func backToSessions(w http.ResponseWriter, r *http.Request, ok string) {
	v := url.Values{"ok": {ok}}
	if q := r.PostFormValue("q"); q != "" {
		v.Set("q", q)
	}
	http.Redirect(w, r, "/sessions?"+v.Encode(), http.StatusSeeOther)
}

func (s *Server) actionFailed(w http.ResponseWriter, p *page, err error) {
	p.Error = err.Error()
	s.render(w, http.StatusBadRequest, "error", p)
}

func (s *Server) kickPost(w http.ResponseWriter, r *http.Request, p *page) {
	if _, err := s.kick(p.User, r.PathValue("id")); err != nil {
		s.actionFailed(w, p, err)
		return
	}
	backToSessions(w, r, "kicked")
}

func (s *Server) extendPost(w http.ResponseWriter, r *http.Request, p *page) {
	if _, err := s.extend(p.User, r.PathValue("id"), r.PostFormValue("by")); err != nil {
		s.actionFailed(w, p, err)
		return
	}
	backToSessions(w, r, "extended")
}

func (s *Server) ratePost(w http.ResponseWriter, r *http.Request, p *page) {
	if _, err := s.setRate(p.User, r.PathValue("id"), r.PostFormValue("down"), r.PostFormValue("up")); err != nil {
		s.actionFailed(w, p, err)
		return
	}
	backToSessions(w, r, "rate")
}

// settingsForm is the settings page's data: values as the form shows
// them (so a rejected entry is shown back as typed) and errors per field.
type settingsForm struct {
	V      map[string]string
	Bools  map[string]bool
	Errors settings.FieldErrors
	// SMS says, per language, what the PIN message costs in SMS
	// segments with the park's name (see smsNotes).
	SMS map[string]*smsNote
	// RADIUSFile: the RADIUS fields are the config file's; the page
	// shows them read-only and says where to change them.
	RADIUSFile bool
}

func formOf(st settings.Site) settingsForm {
	return settingsForm{
		V: map[string]string{
			"name_ar": st.NameAR, "name_en": st.NameEN,
			"session_timeout": st.SessionTimeout.String(), "idle_timeout": st.IdleTimeout.String(),
			"pin_ttl": st.PINTTL.String(), "pin_max_tries": strconv.Itoa(st.PINMaxTries),
			"rate_down": st.RateDown.String(), "rate_up": st.RateUp.String(),
			"uplink_down": st.UplinkDown.String(), "uplink_up": st.UplinkUp.String(),
			"walled_garden":    strings.Join(st.WalledGarden, "\n"),
			"sms_templates.ar": st.SMSTemplates["ar"], "sms_templates.en": st.SMSTemplates["en"],
			"phone_region":        st.PhoneRegion,
			"allowed_prefixes":    strings.Join(st.AllowedPrefixes, "\n"),
			"sms_per_number_hour": strconv.Itoa(st.SMSPerNumberHour),
			"sms_per_device_hour": strconv.Itoa(st.SMSPerDeviceHour),
			"sms_daily_budget":    strconv.Itoa(st.SMSDailyBudget),
			"terms_ar":            st.TermsAR, "terms_en": st.TermsEN, "privacy_url": st.PrivacyURL,
			"radius.servers":     strings.Join(st.RADIUS.Servers, "\n"),
			"radius.fail_policy": st.RADIUS.FailPolicy,
		},
		Bools: map[string]bool{"require_terms": st.RequireTerms, "radius.enabled": st.RADIUS.Enabled},
	}
}

func splitLines(s string) []string {
	out := []string{}
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// siteFromForm reads the settings form over base; values that do not
// parse are reported per field like validation errors.
func siteFromForm(r *http.Request, base settings.Site) (settings.Site, settingsForm) {
	st := base.Clone()
	f := settingsForm{V: map[string]string{}, Bools: map[string]bool{}, Errors: settings.FieldErrors{}}
	get := func(k string) string { v := r.PostFormValue(k); f.V[k] = v; return strings.TrimSpace(v) }
	// The parsers' errors are settings.FieldErrors, shown in the page's
	// language like the validation's.
	bad := func(k string, err error) {
		var e settings.FieldError
		if !errors.As(err, &e) {
			e = settings.FieldError{Code: err.Error()}
		}
		f.Errors[k] = e
	}
	dur := func(k string, dst *settings.Duration) {
		if d, err := settings.ParseDuration(get(k)); err != nil {
			bad(k, err)
		} else {
			*dst = d
		}
	}
	rate := func(k string, dst *settings.Rate) {
		if v, err := settings.ParseRate(get(k)); err != nil {
			bad(k, err)
		} else {
			*dst = v
		}
	}
	num := func(k string, dst *int) {
		if n, err := settings.ParseCount(get(k)); err != nil {
			bad(k, err)
		} else {
			*dst = n
		}
	}
	st.NameAR, st.NameEN = get("name_ar"), get("name_en")
	dur("session_timeout", &st.SessionTimeout)
	dur("idle_timeout", &st.IdleTimeout)
	dur("pin_ttl", &st.PINTTL)
	num("pin_max_tries", &st.PINMaxTries)
	rate("rate_down", &st.RateDown)
	rate("rate_up", &st.RateUp)
	rate("uplink_down", &st.UplinkDown)
	rate("uplink_up", &st.UplinkUp)
	st.WalledGarden = splitLines(get("walled_garden"))
	st.SMSTemplates = map[string]string{"ar": get("sms_templates.ar"), "en": get("sms_templates.en")}
	st.PhoneRegion = get("phone_region")
	st.AllowedPrefixes = splitLines(get("allowed_prefixes"))
	num("sms_per_number_hour", &st.SMSPerNumberHour)
	num("sms_per_device_hour", &st.SMSPerDeviceHour)
	num("sms_daily_budget", &st.SMSDailyBudget)
	st.TermsAR, st.TermsEN, st.PrivacyURL = get("terms_ar"), get("terms_en"), get("privacy_url")
	st.RequireTerms = r.PostFormValue("require_terms") == "on"
	st.RADIUS.Enabled = r.PostFormValue("radius.enabled") == "on"
	f.Bools["require_terms"], f.Bools["radius.enabled"] = st.RequireTerms, st.RADIUS.Enabled
	st.RADIUS.Servers = splitLines(get("radius.servers"))
	st.RADIUS.FailPolicy = get("radius.fail_policy")
	return st, f
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request, p *page) {
	f := formOf(s.o.Settings.Get())
	f.SMS = smsNotes(p.Lang, f.V)
	f.RADIUSFile = s.o.Settings.RADIUSFile()
	p.Data = f
	s.render(w, http.StatusOK, "settings", p)
}

func (s *Server) settingsPost(w http.ResponseWriter, r *http.Request, p *page) {
	cur := s.o.Settings.Get()
	next, f := siteFromForm(r, cur)
	if f.RADIUSFile = s.o.Settings.RADIUSFile(); f.RADIUSFile {
		// Read-only on the page, so not in the form: the file's stay.
		next.RADIUS = cur.RADIUS
		f.Bools["radius.enabled"] = cur.RADIUS.Enabled
		f.V["radius.servers"] = strings.Join(cur.RADIUS.Servers, "\n")
		f.V["radius.fail_policy"] = cur.RADIUS.FailPolicy
	}
	if len(f.Errors) == 0 {
		_, err := s.o.Settings.Update(p.User.Name, next)
		if err == nil {
			http.Redirect(w, r, "/settings?ok=saved", http.StatusSeeOther)
			return
		}
		var fe settings.FieldErrors
		if !errors.As(err, &fe) {
			s.actionFailed(w, p, err)
			return
		}
		f.Errors = fe
	} else {
		for k, v := range s.o.Settings.Check(next) {
			if _, dup := f.Errors[k]; !dup {
				f.Errors[k] = v
			}
		}
	}
	p.Error = p.T("set.errors")
	f.SMS = smsNotes(p.Lang, f.V)
	p.Data = f
	s.render(w, http.StatusUnprocessableEntity, "settings", p)
}

type accountsData struct {
	Users    []User
	Tokens   map[string][]TokenInfo
	NewToken string
	TokenFor string
}

func (s *Server) accountsPage(w http.ResponseWriter, r *http.Request, p *page) {
	s.renderAccounts(w, p, http.StatusOK, accountsData{})
}

func (s *Server) renderAccounts(w http.ResponseWriter, p *page, code int, d accountsData) {
	var err error
	if d.Users, err = s.o.Users.List(); err != nil {
		p.Error = err.Error()
	}
	d.Tokens = map[string][]TokenInfo{}
	all, _ := s.o.Users.Tokens("")
	for _, t := range all {
		d.Tokens[t.User] = append(d.Tokens[t.User], t)
	}
	p.Data = d
	s.render(w, code, "accounts", p)
}

func (s *Server) accountAdd(w http.ResponseWriter, r *http.Request, p *page) {
	if err := s.addUser(p.User, strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("role"), r.PostFormValue("password")); err != nil {
		p.Error = err.Error()
		s.renderAccounts(w, p, http.StatusBadRequest, accountsData{})
		return
	}
	http.Redirect(w, r, "/accounts?ok=account", http.StatusSeeOther)
}

// accountPost performs one action on an account, named by the form's
// "action" field (role, password, delete, token, revoke).
func (s *Server) accountPost(w http.ResponseWriter, r *http.Request, p *page) {
	name := r.PathValue("name")
	var err error
	switch r.PostFormValue("action") {
	case "role":
		err = s.setRole(p.User, name, r.PostFormValue("role"))
	case "password":
		err = s.setPassword(p.User, name, r.PostFormValue("password"))
	case "delete":
		err = s.deleteUser(p.User, name)
	case "revoke":
		id := r.PostFormValue("id")
		if err = s.o.Users.RevokeToken(name, id); err == nil {
			s.audit(p.User.Name, "account."+name+".token", id, "")
		}
	case "token":
		tok, _, terr := s.newToken(p.User, name, r.PostFormValue("label"))
		if terr == nil {
			// Shown in this response only, never in a URL or a log.
			s.renderAccounts(w, p, http.StatusOK, accountsData{NewToken: tok, TokenFor: name})
			return
		}
		err = terr
	default:
		err = errors.New("unknown action")
	}
	if err != nil {
		p.Error = err.Error()
		s.renderAccounts(w, p, http.StatusBadRequest, accountsData{})
		return
	}
	if name == p.User.Name && r.PostFormValue("action") != "token" && r.PostFormValue("action") != "revoke" {
		// Changing one's own password or role ends one's sessions.
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/accounts?ok=account", http.StatusSeeOther)
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, p *page) {
	before, _ := strconv.ParseUint(r.URL.Query().Get("before"), 10, 64)
	recs, err := s.o.Settings.Audit(200, before)
	if err != nil {
		p.Error = err.Error()
	}
	p.Data = recs
	s.render(w, http.StatusOK, "audit", p)
}
