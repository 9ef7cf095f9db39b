// Package portal serves the visitors' pages and runs the login flow:
// phone number → SMS PIN → session. It never touches the kernel itself; it
// asks the session manager, which asks the firewall.
package portal

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkwifi/parkportal/i18n"
	"github.com/parkwifi/parkportal/internal/tmpl"
	"github.com/parkwifi/parkportal/limits"
	"github.com/parkwifi/parkportal/phone"
	"github.com/parkwifi/parkportal/pin"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/sms"
	"github.com/parkwifi/parkportal/static"
	"github.com/parkwifi/parkportal/store"
)

// The pages are web/layout.html with one of web/{splash,pin,status,terms}.html,
// escaped by html/template at build time into web/escaped (see package
// internal/tmpl for why); go generate rewrites them and TestEscapedPages
// fails while they are stale.
//
//go:generate go test -run ^TestEscapedPages$ . -update
//go:embed web/escaped web/static
var webFS embed.FS

// pageNames are the pages, each rendered from "layout".
var pageNames = []string{"splash", "pin", "status", "terms"}

// boundFuncs are the template funcs each render binds to the page's
// language: T "key" is the catalogue's text.
var boundFuncs = []string{"T"}

// funcsFor returns the bound funcs for lang.
func funcsFor(lang string) tmpl.FuncMap {
	return tmpl.FuncMap{"T": func(key string) string { return catalog.T(lang, key) }}
}

// Neighbors tells which device (MAC) is behind an address on the LAN.
// *firewall.Firewall implements it.
type Neighbors interface {
	LookupMAC(ip netip.Addr) (net.HardwareAddr, error)
	InUse(ip netip.Addr, mac net.HardwareAddr) bool
}

// Limiter guards SMS sending and PIN guessing; *limits.Limiter
// implements it. ReleaseSMS gives back a reservation (the allowed
// decision's Reserved) whose message certainly did not go out.
type Limiter interface {
	ReserveSMS(phone, mac string) (limits.Decision, error)
	ReleaseSMS(phone, mac string, reserved time.Time) error
	TryPIN(phone, mac string) (limits.Decision, error)
	ResetPIN(phone, mac string) error
}

// Authorizer asks central authorisation (RADIUS) whether a number may
// log in once its PIN checked out. It returns the session's grant (nil
// for the site's defaults), a *Rejected when the number is blocked, or
// another error when no decision could be had and the site fails closed.
type Authorizer interface {
	Authorize(ctx context.Context, phone string, mac net.HardwareAddr, ip netip.Addr) (*session.Grant, error)
}

// Rejected is a central refusal of a number. Reason, the server's
// Reply-Message cleaned for display (radius.VisitorText), is shown to
// the visitor under the bilingual refusal.
type Rejected struct{ Reason string }

func (r *Rejected) Error() string { return "rejected by central authorisation: " + r.Reason }

// Site is what the pages and the flow need of the site's policy.
type Site struct {
	ID              string
	NameAR, NameEN  string
	PhoneRegion     string
	AllowedPrefixes []string
	PINTTL          time.Duration
	PINMaxTries     int
	PrivacyURL      string
	// VenueURL is shown to devices through the Captive Portal API as
	// venue-info-url (RFC 8908); optional.
	VenueURL string
	// RequireTerms makes visitors tick "I accept the terms of use"
	// before a PIN is sent. The box links to TermsURL when set, else to
	// our own terms page (/terms) showing TermsAR or TermsEN, the text
	// staff wrote; with neither, the link is left out.
	RequireTerms bool
	TermsURL     string
	// TermsAR and TermsEN are the terms of use as plain text (blank
	// lines separate paragraphs); html/template escapes them.
	TermsAR, TermsEN string
	// RateDown is the site's download rate for a visitor in bit/s, as
	// staff last set it; the splash page states it (0: no figure).
	RateDown uint64
	// RetentionDays is how long session records (phone numbers) are
	// kept; the privacy notice says so.
	RetentionDays int
	// SMSTemplates maps a language to the message text, with {pin},
	// {validity}, {minutes} and {site} placeholders (see sms.Render).
	SMSTemplates map[string]string
}

// Options wire a Server.
type Options struct {
	Site Site
	Addr netip.AddrPort // where the portal listens (gateway IP and port)
	// TLSHost is host:port of the HTTPS listener when the site has a
	// certificate ("" when not): the splash page and the Captive Portal
	// API are then advertised over HTTPS.
	TLSHost  string
	Sessions *session.Manager
	Store    *store.Store
	SMS      sms.Sender
	Limits   Limiter
	Auth     Authorizer // nil when the site has no central authorisation
	Events   Events     // nil for none
	Neigh    Neighbors
	PINKey   []byte
	Rand     io.Reader        // nil means crypto/rand
	Now      func() time.Time // nil means time.Now
	Logger   *slog.Logger
}

// Server is the visitors' HTTP handler.
type Server struct {
	o Options
	// live holds what staff can change while the daemon runs (SetSite,
	// SetLimits); requests read it without locks.
	live   atomic.Pointer[liveConfig]
	events Events
	pages  map[string]*tmpl.Set
	funcs  map[string]tmpl.FuncMap // by language
	mux    http.Handler
	host   string // the Host header our own plain-HTTP pages are served under
	hosts  map[string]bool
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Site.PINMaxTries <= 0 {
		o.Site.PINMaxTries = 5
	}
	if o.Site.PINTTL <= 0 {
		o.Site.PINTTL = 5 * time.Minute
	}
	s := &Server{o: o, pages: map[string]*tmpl.Set{}, host: o.Addr.String(), hosts: map[string]bool{o.Addr.String(): true},
		funcs: map[string]tmpl.FuncMap{langAR: funcsFor(langAR), langEN: funcsFor(langEN)}}
	s.live.Store(&liveConfig{site: o.Site, limits: o.Limits})
	s.events = o.Events
	if s.events == nil {
		s.events = noEvents{}
	}
	if o.TLSHost != "" {
		s.hosts[o.TLSHost] = true
	}
	for _, name := range pageNames {
		src, err := webFS.ReadFile("web/escaped/" + name + ".tmpl")
		if err != nil {
			return nil, fmt.Errorf("reading %s page: %w", name, err)
		}
		t, err := tmpl.Parse(name, string(src), nil, boundFuncs...)
		if err != nil {
			return nil, fmt.Errorf("parsing %s page: %w", name, err)
		}
		s.pages[name] = t
	}
	assets, err := fs.Sub(webFS, "web/static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleHome)
	mux.HandleFunc("GET /api/captive", s.handleCaptiveAPI)
	mux.HandleFunc("POST /sms", s.handleSMS)
	mux.HandleFunc("POST /pin", s.handlePIN)
	mux.HandleFunc("POST /cancel", s.handleCancel)
	mux.HandleFunc("POST /logout", s.handleLogout)
	mux.HandleFunc("GET /terms", s.handleTerms)
	mux.Handle("GET /static/", static.Handler("/static/", assets, "public, max-age=3600"))
	mux.HandleFunc("/", s.handleOther)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, pickLang(r), "splash", errCrossOrigin)
	}))
	s.mux = cop.Handler(mux)
	return s, nil
}

type liveConfig struct {
	site   Site
	limits Limiter
	// splash caches the plain splash page per language: it is the page a
	// crowd of phones asks for, and it only changes with the site.
	splash [2]struct {
		once sync.Once
		page []byte
	}
}

func (s *Server) site() *Site     { return &s.live.Load().site }
func (s *Server) limits() Limiter { return s.live.Load().limits }

// SetSite applies new site settings (names, texts, number rules, PIN
// policy) to the next requests, without a restart.
func (s *Server) SetSite(site Site) {
	if site.PINMaxTries <= 0 {
		site.PINMaxTries = 5
	}
	if site.PINTTL <= 0 {
		site.PINTTL = 5 * time.Minute
	}
	old := s.live.Load()
	s.live.Store(&liveConfig{site: site, limits: old.limits})
}

// SetLimits swaps the abuse limiter (new caps); its counts live in the
// store, so they carry over.
func (s *Server) SetLimits(l Limiter) {
	old := s.live.Load()
	s.live.Store(&liveConfig{site: old.site, limits: l})
}

// SetEvents sets who hears the login flow's events.
func (s *Server) SetEvents(e Events) { s.events = e }

// Events hears what happens in the login flow, for metrics. The reasons
// passed are stable names: SMSFailed gets a problem code
// (sms-unavailable, sms-undeliverable, sms-paused); SMSRefused a problem code
// (malformed-number, number-not-allowed) or a limits.Reason (per-number,
// per-device, site-budget, resend-gap); PINRefused a limits.Reason
// (pin-backoff), for a PIN try refused before it was checked.
type Events interface {
	SMSSent()
	SMSFailed(reason string)
	SMSRefused(reason string)
	PINAccepted()
	PINFailed(outcome string)
	PINRefused(reason string)
}

type noEvents struct{}

func (noEvents) SMSSent()          {}
func (noEvents) SMSFailed(string)  {}
func (noEvents) SMSRefused(string) {}
func (noEvents) PINAccepted()      {}
func (noEvents) PINFailed(string)  {}
func (noEvents) PINRefused(string) {}

// PortalURL is the address of the splash page: HTTPS when the site has a
// certificate, so phones show a padlock and RFC 8908 clients accept it.
func (s *Server) PortalURL() string {
	if s.o.TLSHost != "" {
		return "https://" + s.o.TLSHost + "/"
	}
	return "http://" + s.host + "/"
}

// APIURL is the Captive Portal API (RFC 8908) URL to hand out in DHCP
// option 114 and RA option 37 (RFC 8910).
func (s *Server) APIURL() string { return s.PortalURL() + "api/captive" }

// ServeHTTP routes a request. Anything addressed to another host is a
// visitor's intercepted request (a probe, a web page): it is redirected
// to the splash page, which makes phones open their sign-in sheet.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, which cross-origin protection rightly
	// refuses, and nobody could log in.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if !s.hosts[r.Host] {
		s.redirectToPortal(w, r)
		return
	}
	// Forms are tiny; anything bigger is not ours.
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	s.mux.ServeHTTP(w, r)
}

func (s *Server) redirectToPortal(w http.ResponseWriter, r *http.Request) {
	// Never echo anything from the request into the Location: no open
	// redirect, no header injection.
	http.Redirect(w, r, s.PortalURL(), http.StatusFound)
}

// handleOther answers any other path on our own host with the splash
// page's address. A valid ?lang= is honoured on the way: pages served
// in reply to a form (POST /pin, /sms, /logout) used to carry a relative
// switch link, so a page a visitor kept open may still ask for
// /pin?lang=en; they get the language they asked for. The Location is
// one of a fixed few, never built from the request.
func (s *Server) handleOther(w http.ResponseWriter, r *http.Request) {
	if q := r.URL.Query().Get("lang"); q == langAR || q == langEN {
		setLangCookie(w, q)
		http.Redirect(w, r, s.PortalURL()+"?lang="+q, http.StatusFound)
		return
	}
	s.redirectToPortal(w, r)
}

// view is the data every page template gets; texts come from the
// catalogue through the bound func T.
type view struct {
	// Lang and Dir are the page's; OtherLang is the switch's.
	Lang, Dir, OtherLang string
	SiteName             string
	PrivacyURL           string
	// SwitchURL is the language switch's link: an absolute path with
	// ?lang=, since a page may be the answer to a form post (/pin,
	// /sms, /logout) and a relative "?lang=" would point at that form's
	// address.
	SwitchURL    string
	RequireTerms bool
	// TermsHref is where "read the terms" goes: TermsURL, else our
	// terms page when staff wrote terms, else "" (no link).
	TermsHref string
	// Offer is the splash page's opening line, with the site's rate.
	Offer   string
	Problem *problem
	// ProblemNote is a message from elsewhere, in its own language (a
	// RADIUS server's Reply-Message), shown under Problem's text.
	ProblemNote string
	Notice      string
	Phone       string // as shown to the visitor
	PhoneE164   string
	Remaining   string
	SecondsLeft int
	// DataUsed is the session's traffic so far; RetentionNote says how
	// long session records are kept (Qatar's data protection law asks
	// for notice of it).
	DataUsed      string
	RetentionNote string
	// Speed is the session's own download rate (a RADIUS plan or staff
	// may have set it apart from the site's), "" when unknown.
	Speed string
	// Terms are the paragraphs of the terms page; TermsLang and
	// TermsDir are set when they are in the other language (staff
	// wrote only that one).
	Terms               []string
	TermsLang, TermsDir string
}

func (s *Server) newView(lang string) *view {
	site := s.site()
	v := &view{Lang: lang, Dir: dir(lang), OtherLang: i18n.OtherLang(lang),
		SiteName: site.NameAR, PrivacyURL: site.PrivacyURL, RequireTerms: site.RequireTerms}
	v.SwitchURL = "/?lang=" + v.OtherLang
	switch {
	case site.TermsURL != "":
		v.TermsHref = site.TermsURL
	case strings.TrimSpace(site.TermsAR+site.TermsEN) != "":
		v.TermsHref = "/terms?lang=" + v.Lang
	}
	v.Offer = tr(lang, "free")
	if site.RateDown > 0 {
		v.Offer = tr(lang, "free.at", formatRate(site.RateDown, lang))
	}
	if d := site.RetentionDays; d > 0 {
		v.RetentionNote = tr(lang, "privacy.retention", i18n.Days.Count(lang, d, i18n.Accusative))
	}
	if lang == langEN {
		v.SiteName = site.NameEN
	}
	return v
}

// render executes a page into a buffer first, so a template failure
// becomes a clean error page rather than half a page.
func (s *Server) render(w http.ResponseWriter, status int, page string, v *view) {
	var buf bytes.Buffer
	if err := s.pages[page].Execute(&buf, "layout", v, s.funcs[v.Lang]); err != nil {
		s.o.Logger.Error("rendering page", "page", page, "err", err)
		http.Error(w, "internal error / خطأ داخلي", http.StatusInternalServerError)
		return
	}
	s.writePage(w, status, buf.Bytes())
}

func (s *Server) writePage(w http.ResponseWriter, status int, page []byte) {
	if page == nil {
		http.Error(w, "internal error / خطأ داخلي", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(status)
	w.Write(page)
}

// language picks the page language and remembers an explicit choice.
func (s *Server) language(w http.ResponseWriter, r *http.Request) string {
	lang := pickLang(r)
	if f := r.PostFormValue("lang"); f == langAR || f == langEN {
		lang = f
	}
	if q := r.URL.Query().Get("lang"); q == langAR || q == langEN {
		setLangCookie(w, q)
	}
	return lang
}

// setLangCookie remembers an explicit language choice (lang is langAR or
// langEN) for a day, on every path of the portal.
func setLangCookie(w http.ResponseWriter, lang string) {
	http.SetCookie(w, &http.Cookie{Name: "lang", Value: lang, Path: "/", MaxAge: 86400, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// device identifies the requesting device by its source address and the
// MAC the kernel's neighbour table holds for it.
func (s *Server) device(r *http.Request) (netip.Addr, net.HardwareAddr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("parsing remote address %q: %w", r.RemoteAddr, err)
	}
	ip := ap.Addr().Unmap()
	mac, err := s.o.Neigh.LookupMAC(ip)
	if err != nil {
		return ip, nil, err
	}
	return ip, mac, nil
}

func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	lang := s.language(w, r)
	ip, mac, err := s.device(r)
	if err != nil {
		s.o.Logger.Info("splash from unseen device", "ip", ip, "err", err)
		v := s.newView(lang)
		v.Problem = errNoDevice
		s.render(w, errNoDevice.Status, "splash", v)
		return
	}
	if sess, ok := s.activeSession(ip, mac); ok {
		s.renderStatus(w, lang, sess)
		return
	}
	if p, err := s.o.Store.Pending(mac.String()); err == nil && s.o.Now().Before(p.Expires) {
		s.renderPIN(w, http.StatusOK, lang, p.Phone, nil)
		return
	}
	s.writePage(w, http.StatusOK, s.cachedSplash(lang))
}

// cachedSplash renders the plain splash page for lang once per site
// configuration and reuses it.
func (s *Server) cachedSplash(lang string) []byte {
	live := s.live.Load()
	i := 0
	if lang == langEN {
		i = 1
	}
	c := &live.splash[i]
	c.once.Do(func() {
		var buf bytes.Buffer
		if err := s.pages["splash"].Execute(&buf, "layout", s.newView(lang), s.funcs[lang]); err != nil {
			s.o.Logger.Error("rendering page", "page", "splash", "err", err)
			return
		}
		c.page = buf.Bytes()
	})
	return c.page
}

// activeSession finds the device's session. A device that kept its MAC
// but got a new address (DHCP renewal) keeps its session, provided its
// old address is no longer in use by it.
func (s *Server) activeSession(ip netip.Addr, mac net.HardwareAddr) (*store.Session, bool) {
	sess, err := s.o.Sessions.ActiveByMAC(mac)
	if err != nil {
		return nil, false
	}
	if sess.IP == ip {
		return sess, true
	}
	if s.o.Neigh.InUse(sess.IP, mac) {
		return nil, false
	}
	moved, err := s.o.Sessions.Rebind(sess.ID, ip)
	if err != nil {
		s.o.Logger.Error("moving session to new address", "session", sess.ID, "err", err)
		return nil, false
	}
	return moved, true
}

func (s *Server) renderStatus(w http.ResponseWriter, lang string, sess *store.Session) {
	v := s.newView(lang)
	left := max(sess.Expires.Sub(s.o.Now()), 0)
	v.SecondsLeft = int(left.Seconds())
	v.Remaining = i18n.Remaining(lang, left)
	s.o.Sessions.Fill(sess)
	v.DataUsed = formatBytes(sess.BytesDown + sess.BytesUp)
	if sess.RateDown > 0 {
		v.Speed = formatRate(sess.RateDown, lang)
	}
	s.render(w, http.StatusOK, "status", v)
}

func (s *Server) renderPIN(w http.ResponseWriter, status int, lang, e164 string, p *problem) {
	v := s.newView(lang)
	v.Phone, v.PhoneE164, v.Problem = maskPhone(e164), e164, p
	s.render(w, status, "pin", v)
}

func (s *Server) fail(w http.ResponseWriter, lang, page string, p *problem) {
	v := s.newView(lang)
	v.Problem = p
	s.render(w, p.Status, page, v)
}

// formFrom reads a visitor's form post and identifies the device. On
// failure it has answered the visitor and reports false.
func (s *Server) formFrom(w http.ResponseWriter, r *http.Request, what string) (lang string, ip netip.Addr, mac net.HardwareAddr, ok bool) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, pickLang(r), "splash", errBadRequest)
		return "", ip, nil, false
	}
	lang = s.language(w, r)
	ip, mac, err := s.device(r)
	if err != nil {
		s.o.Logger.Info(what+" from unseen device", "ip", ip, "err", err)
		s.fail(w, lang, "splash", errNoDevice)
		return lang, ip, nil, false
	}
	return lang, ip, mac, true
}

func (s *Server) handleSMS(w http.ResponseWriter, r *http.Request) {
	lang, ip, mac, ok := s.formFrom(w, r, "SMS request")
	if !ok {
		return
	}
	if s.site().RequireTerms && r.PostFormValue("terms") != "on" {
		v := s.newView(lang)
		v.Phone, v.Problem = r.PostFormValue("phone"), errTermsRequired
		s.render(w, errTermsRequired.Status, "splash", v)
		return
	}
	e164, err := phone.Normalize(r.PostFormValue("phone"), s.site().PhoneRegion, s.site().AllowedPrefixes)
	if err != nil {
		p := errMalformedNumber
		if errors.Is(err, phone.ErrNotAllowed) {
			p = errNumberNotAllowed
		}
		s.events.SMSRefused(p.Code)
		v := s.newView(lang)
		v.Phone, v.Problem = r.PostFormValue("phone"), p
		s.render(w, p.Status, "splash", v)
		return
	}
	lim := s.limits()
	d, err := lim.ReserveSMS(e164, mac.String())
	if err != nil {
		s.o.Logger.Error("checking SMS limits", "err", err)
		s.fail(w, lang, "splash", errInternal)
		return
	}
	if !d.Allowed {
		s.events.SMSRefused(d.Reason.String())
		s.o.Logger.Warn("SMS refused by limit", "reason", d.Reason.String(), "to", maskPhone(e164), "mac", mac.String(), "retry_after", d.RetryAfter.Round(time.Second))
		v := s.newView(lang)
		v.Phone = r.PostFormValue("phone")
		v.Problem = limited(d)
		s.render(w, v.Problem.Status, "splash", v)
		return
	}
	// From here on, every way out on which no message went out gives
	// the slot back: the visitor did not get a code and must be able to
	// ask again at once, without it counting against their allowance.
	release := func() {
		if err := lim.ReleaseSMS(e164, mac.String(), d.Reserved); err != nil {
			s.o.Logger.Error("giving back an unused SMS allowance", "to", maskPhone(e164), "err", err)
		}
	}
	code, err := pin.Generate(s.o.Rand)
	if err != nil {
		s.o.Logger.Error("generating PIN", "err", err)
		release()
		s.fail(w, lang, "splash", errInternal)
		return
	}
	// A resend replaces the earlier PIN, but only once the new one is
	// on its way: keep the earlier one to put back if sending fails, so
	// a visitor who taps "resend" during an outage can still use the
	// code already on their phone (with the tries it has left).
	prev, err := s.o.Store.Pending(mac.String())
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.o.Logger.Error("reading pending PIN", "mac", mac.String(), "err", err)
		}
		prev = nil
	}
	now := s.o.Now()
	pending := &store.Pending{
		MAC: mac.String(), Phone: e164, Lang: lang,
		Hash:    pin.Hash(s.o.PINKey, mac.String(), e164, code),
		Created: now, Expires: now.Add(s.site().PINTTL),
	}
	// Stored before sending: a PIN the visitor receives always exists.
	if err := s.o.Store.PutPending(pending); err != nil {
		s.o.Logger.Error("storing pending PIN", "mac", mac.String(), "err", err)
		release()
		s.fail(w, lang, "splash", errInternal)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	body := s.smsText(lang, code)
	if err := s.o.SMS.Send(ctx, sms.Message{To: e164, Body: body}); err != nil {
		if prev != nil {
			s.restorePending(prev)
		} else if err := s.o.Store.DeletePending(mac.String()); err != nil {
			s.o.Logger.Error("deleting unsent PIN", "mac", mac.String(), "err", err)
		}
		// Only a message that certainly did not go out is given back
		// (sms.NotSent: breaker open, no connection, provider refused).
		// A timeout after the request was written may still deliver it
		// and cost money, so it stays counted: otherwise whoever can
		// slow the provider down gets SMS past the caps for free.
		if sms.NotSent(err) {
			release()
		}
		// The visitor hears what they can do: try another number (the
		// number cannot get messages), try later (our account is
		// refused: staff are alerted), or try again shortly.
		p := errSMSTemporary
		var se *sms.Error
		if errors.As(err, &se) {
			switch se.Kind {
			case sms.Permanent:
				p = errSMSPermanent
			case sms.Operator:
				p = errSMSPaused
			}
		}
		s.events.SMSFailed(p.Code)
		s.o.Logger.Warn("sending PIN SMS failed", "to", maskPhone(e164), "err", err)
		s.fail(w, lang, "splash", p)
		return
	}
	s.events.SMSSent()
	s.o.Logger.Info("PIN sent", "to", maskPhone(e164), "mac", mac.String(), "ip", ip)
	http.Redirect(w, r, "/?lang="+lang, http.StatusSeeOther)
}

// smsText renders the site's template for the visitor's language (the
// defaults fit one SMS each: Arabic within 70 UCS-2 characters, English
// within 160 GSM-7). A site still on an earlier default gets the current
// one, worded with the right plural.
func (s *Server) smsText(lang, code string) string {
	tmpl := sms.Upgrade(lang, s.site().SMSTemplates[lang])
	if tmpl == "" {
		tmpl = sms.DefaultTemplates[lang]
	}
	name := s.site().NameAR
	if lang == langEN {
		name = s.site().NameEN
	}
	return sms.Render(tmpl, code, s.site().PINTTL, lang, name)
}

func (s *Server) handlePIN(w http.ResponseWriter, r *http.Request) {
	lang, ip, mac, ok := s.formFrom(w, r, "PIN")
	if !ok {
		return
	}
	code, ok := pin.Clean(r.PostFormValue("pin"))
	if !ok {
		p, err := s.o.Store.Pending(mac.String())
		if err != nil {
			s.fail(w, lang, "splash", errNoPending)
			return
		}
		s.renderPIN(w, errMalformedPIN.Status, lang, p.Phone, errMalformedPIN)
		return
	}
	pending, err := s.o.Store.Pending(mac.String())
	if err != nil {
		s.fail(w, lang, "splash", errNoPending)
		return
	}
	d, err := s.limits().TryPIN(pending.Phone, mac.String())
	if err != nil {
		s.o.Logger.Error("checking PIN limits", "err", err)
		s.fail(w, lang, "splash", errInternal)
		return
	}
	if !d.Allowed {
		s.events.PINRefused(d.Reason.String())
		s.o.Logger.Warn("PIN try refused by back-off", "mac", mac.String(), "to", maskPhone(pending.Phone), "retry_after", d.RetryAfter.Round(time.Second))
		s.renderPIN(w, http.StatusTooManyRequests, lang, pending.Phone, limited(d))
		return
	}
	outcome, p, err := s.o.Store.VerifyPending(mac.String(), s.o.Now(), s.site().PINMaxTries, func(p *store.Pending) bool {
		return pin.Check(s.o.PINKey, p.Hash, mac.String(), p.Phone, code)
	})
	if err != nil {
		s.o.Logger.Error("checking PIN", "mac", mac.String(), "err", err)
		s.fail(w, lang, "splash", errInternal)
		return
	}
	if outcome == store.PINAccepted {
		s.events.PINAccepted()
	} else {
		s.events.PINFailed(map[store.Outcome]string{store.PINNone: "none", store.PINExpired: "expired", store.PINExhausted: "exhausted", store.PINWrong: "wrong"}[outcome])
	}
	switch outcome {
	case store.PINNone:
		s.fail(w, lang, "splash", errNoPending)
		return
	case store.PINExpired:
		s.fail(w, lang, "splash", errExpiredPIN)
		return
	case store.PINExhausted:
		s.o.Logger.Warn("PIN voided after too many wrong tries", "mac", mac.String(), "to", maskPhone(p.Phone))
		s.fail(w, lang, "splash", errTooManyTries)
		return
	case store.PINWrong:
		s.renderPIN(w, http.StatusBadRequest, lang, p.Phone, wrongPIN(s.site().PINMaxTries-p.Tries))
		return
	}
	if err := s.limits().ResetPIN(p.Phone, mac.String()); err != nil {
		s.o.Logger.Error("resetting PIN back-off", "err", err)
	}
	var grant *session.Grant
	if s.o.Auth != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		grant, err = s.o.Auth.Authorize(ctx, p.Phone, mac, ip)
		cancel()
		var rej *Rejected
		switch {
		case errors.As(err, &rej):
			s.o.Logger.Warn("number refused by central authorisation", "to", maskPhone(p.Phone), "mac", mac.String(), "reason", rej.Reason)
			v := s.newView(lang)
			v.Problem, v.ProblemNote = errNumberBlocked, rej.Reason
			s.render(w, errNumberBlocked.Status, "splash", v)
			return
		case err != nil:
			s.o.Logger.Error("central authorisation unavailable; site fails closed", "err", err)
			s.restorePending(p)
			s.renderPIN(w, errAuthUnavailable.Status, lang, p.Phone, errAuthUnavailable)
			return
		}
	}
	sess, err := s.o.Sessions.Activate(session.Login{MAC: mac, IP: ip, Phone: p.Phone, Lang: lang, Grant: grant})
	if errors.Is(err, session.ErrAddressInUse) {
		// The session manager logged who holds the address. Reconnecting
		// gets this device an address of its own from the DHCP server.
		s.restorePending(p)
		s.renderPIN(w, errAddressInUse.Status, lang, p.Phone, errAddressInUse)
		return
	}
	if err != nil {
		s.o.Logger.Error("activating session", "mac", mac.String(), "ip", ip, "err", err)
		s.restorePending(p)
		s.renderPIN(w, errInternal.Status, lang, p.Phone, errInternal)
		return
	}
	s.renderStatus(w, lang, sess)
}

// restorePending puts back a PIN that was accepted when the login could
// not be completed, so "nothing was changed, try again" is true: the
// same PIN works on the next try, until it expires. It also puts back
// the earlier PIN when a resend could not be sent.
func (s *Server) restorePending(p *store.Pending) {
	if err := s.o.Store.PutPending(p); err != nil {
		s.o.Logger.Error("restoring pending PIN", "mac", p.MAC, "err", err)
	}
}

// handleTerms shows the terms of use staff wrote, in the visitor's
// language, or in the other one when only that was written. html/template
// escapes the text; blank lines make paragraphs.
func (s *Server) handleTerms(w http.ResponseWriter, r *http.Request) {
	lang := s.language(w, r)
	site := s.site()
	text, other := site.TermsAR, site.TermsEN
	if lang == langEN {
		text, other = site.TermsEN, site.TermsAR
	}
	v := s.newView(lang)
	v.SwitchURL = "/terms?lang=" + v.OtherLang
	if strings.TrimSpace(text) == "" {
		if strings.TrimSpace(other) == "" {
			s.redirectToPortal(w, r)
			return
		}
		text, v.TermsLang, v.TermsDir = other, v.OtherLang, dir(v.OtherLang)
	}
	v.Terms = paragraphs(text)
	s.render(w, http.StatusOK, "terms", v)
}

// paragraphs splits plain text at blank lines, dropping empty ones.
func paragraphs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return out
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	lang := s.language(w, r)
	if _, mac, err := s.device(r); err == nil {
		s.o.Store.DeletePending(mac.String())
	}
	http.Redirect(w, r, "/?lang="+lang, http.StatusSeeOther)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	lang := s.language(w, r)
	ip, mac, err := s.device(r)
	if err != nil {
		s.fail(w, lang, "splash", errNoDevice)
		return
	}
	v := s.newView(lang)
	if sess, err := s.o.Sessions.ActiveFor(ip, mac); err == nil {
		if _, err := s.o.Sessions.End(sess.ID, store.ReasonLogout); err != nil {
			s.o.Logger.Error("logging out", "session", sess.ID, "err", err)
			s.fail(w, lang, "status", errInternal)
			return
		}
		v.Notice = tr(lang, "logout.done")
	}
	s.render(w, http.StatusOK, "splash", v)
}

// maskPhone shows enough of a number for a visitor to recognise it and
// little enough to keep logs and screens discreet: +974••••3456.
func maskPhone(e164 string) string {
	if len(e164) < 8 {
		return "••••"
	}
	return e164[:4] + "••••" + e164[len(e164)-4:]
}

// formatBytes renders a byte count the way phones show data use.
func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KB", n>>10)
}

// dir is a language's writing direction.
func dir(lang string) string {
	if lang == langAR {
		return "rtl"
	}
	return "ltr"
}
