package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/store"
)

// maxBody bounds a request body; a site document with long terms texts
// is the largest thing anyone sends.
const maxBody = 300 << 10

type wrapper func(Role, authed) http.Handler

func (s *Server) routesAPI(mux *http.ServeMux, auth wrapper) {
	mux.Handle("GET /api/v1/me", auth(Viewer, s.apiMe))
	mux.Handle("GET /api/v1/dashboard", auth(Viewer, s.apiDashboard))
	mux.Handle("GET /api/v1/sessions", auth(Viewer, s.apiSessions))
	mux.Handle("POST /api/v1/sessions/{id}/kick", auth(Operator, s.apiKick))
	mux.Handle("POST /api/v1/sessions/{id}/extend", auth(Operator, s.apiExtend))
	mux.Handle("POST /api/v1/sessions/{id}/rate", auth(Operator, s.apiRate))
	mux.Handle("GET /api/v1/site", auth(Viewer, s.apiSite))
	mux.Handle("PUT /api/v1/site", auth(Admin, s.apiSitePut))
	mux.Handle("PATCH /api/v1/site", auth(Admin, s.apiSitePatch))
	mux.Handle("GET /api/v1/site/export", auth(Viewer, s.apiSiteExport))
	mux.Handle("POST /api/v1/site/import", auth(Admin, s.apiSiteImport))
	mux.Handle("GET /api/v1/audit", auth(Viewer, s.apiAudit))
	mux.Handle("GET /api/v1/users", auth(Admin, s.apiUsers))
	mux.Handle("POST /api/v1/users", auth(Admin, s.apiUserAdd))
	mux.Handle("PATCH /api/v1/users/{name}", auth(Admin, s.apiUserPatch))
	mux.Handle("DELETE /api/v1/users/{name}", auth(Admin, s.apiUserDelete))
	mux.Handle("GET /api/v1/users/{name}/tokens", auth(Admin, s.apiTokens))
	mux.Handle("POST /api/v1/users/{name}/tokens", auth(Admin, s.apiTokenAdd))
	mux.Handle("DELETE /api/v1/users/{name}/tokens/{id}", auth(Admin, s.apiTokenDelete))
	mux.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "no such API endpoint")
	}))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError is every error the API returns. Fields carries per-field
// validation messages keyed by the field's JSON name.
type apiError struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// writeErr maps the errors of the packages below to HTTP statuses.
func writeErr(w http.ResponseWriter, err error) {
	var fe settings.FieldErrors
	switch {
	case errors.As(err, &fe):
		// English for scripts; the console shows the same errors in the
		// page's language.
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: "invalid settings", Fields: fe.English()})
	case errors.Is(err, store.ErrNotFound), errors.Is(err, ErrNoUser):
		writeJSONError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrUserTaken), errors.Is(err, ErrLastAdmin):
		writeJSONError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrBusy):
		w.Header().Set("Retry-After", "2")
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSONError(w, http.StatusBadRequest, err.Error())
	}
}

// readBody reads a bounded request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	return b, nil
}

// decodeRequest reads the request's body (bounded) into v, strictly.
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(b, v)
}

// decodeStrict decodes one JSON object into v, refusing unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding request: %w", err)
	}
	if dec.More() {
		return errors.New("decoding request: trailing data after the object")
	}
	return nil
}

// SessionView is a session as the API and the console show it.
type SessionView struct {
	ID    string `json:"id"`
	Phone string `json:"phone"`
	MAC   string `json:"mac"`
	IP    string `json:"ip"`
	// Hostname and Vendor are what the device told the gateway's DHCP
	// server (options 12 and 60), "" when it said nothing: the visitor
	// chose them, so they identify a device for staff but prove nothing.
	Hostname   string    `json:"hostname"`
	Vendor     string    `json:"vendor"`
	Lang       string    `json:"lang"`
	Start      time.Time `json:"start"`
	Expires    time.Time `json:"expires"`
	LastActive time.Time `json:"last_active"`
	// SecondsLeft is until the hard expiry.
	SecondsLeft int64  `json:"seconds_left"`
	RateDown    uint64 `json:"rate_down"` // bit/s
	RateUp      uint64 `json:"rate_up"`
	BytesDown   uint64 `json:"bytes_down"`
	BytesUp     uint64 `json:"bytes_up"`
	State       string `json:"state"`
}

func viewOf(x *store.Session, now time.Time) SessionView {
	left := int64(x.Expires.Sub(now) / time.Second)
	if left < 0 {
		left = 0
	}
	return SessionView{
		ID: x.ID, Phone: x.Phone, MAC: x.MAC.String(), IP: x.IP.String(), Lang: x.Lang,
		Hostname: x.Hostname, Vendor: x.Vendor,
		Start: x.Start, Expires: x.Expires, LastActive: x.LastActive, SecondsLeft: left,
		RateDown: x.RateDown, RateUp: x.RateUp, BytesDown: x.BytesDown, BytesUp: x.BytesUp,
		State: string(x.State),
	}
}

func (s *Server) apiMe(w http.ResponseWriter, r *http.Request, u *User) {
	writeJSON(w, http.StatusOK, u)
}

// Dashboard is GET /api/v1/dashboard.
type Dashboard struct {
	Site     string           `json:"site"`
	Now      metrics.Snapshot `json:"now"`
	History  []metrics.Sample `json:"history"`
	SMSLeft  int              `json:"sms_budget_left"`
	PINRate  float64          `json:"pin_success_rate"` // 0..1; 0 without attempts
	UplinkDn uint64           `json:"uplink_down"`      // capacity, bit/s; 0 = unlimited
	UplinkUp uint64           `json:"uplink_up"`
}

func (s *Server) dashboard() Dashboard {
	site := s.o.Settings.Get()
	d := Dashboard{Site: site.ID, UplinkDn: uint64(site.UplinkDown), UplinkUp: uint64(site.UplinkUp), History: []metrics.Sample{}}
	if s.o.Stats != nil {
		d.Now = s.o.Stats.Snapshot()
		d.History = s.o.Stats.History()
	} else {
		d.Now.Time = s.now()
	}
	d.SMSLeft = max(site.SMSDailyBudget-int(d.Now.Today.SMSSent), 0)
	if n := d.Now.Today.PINOK + d.Now.Today.PINFailed; n > 0 {
		d.PINRate = float64(d.Now.Today.PINOK) / float64(n)
	}
	return d
}

func (s *Server) apiDashboard(w http.ResponseWriter, r *http.Request, u *User) {
	writeJSON(w, http.StatusOK, s.dashboard())
}

func (s *Server) listSessions(q string) ([]SessionView, error) {
	list, err := s.o.Sessions.List(q)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	now := s.now()
	out := make([]SessionView, 0, len(list))
	for _, x := range list {
		out = append(out, viewOf(x, now))
	}
	return out, nil
}

func (s *Server) apiSessions(w http.ResponseWriter, r *http.Request, u *User) {
	out, err := s.listSessions(r.URL.Query().Get("q"))
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Add("Vary", "Accept")
	if wantsText(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		writeSessionsTable(w, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) kick(u *User, id string) (*store.Session, error) {
	x, err := s.o.Sessions.End(id, store.ReasonKicked)
	if err == nil {
		s.log.Info("session kicked by staff", "session", id, "by", u.Name)
	}
	return x, err
}

func (s *Server) apiKick(w http.ResponseWriter, r *http.Request, u *User) {
	x, err := s.kick(u, r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(x, s.now()))
}

// maxExtend bounds one extension; staff can repeat it.
const maxExtend = 24 * time.Hour

func (s *Server) extend(u *User, id, by string) (*store.Session, error) {
	d, err := settings.ParseDuration(by)
	if err != nil {
		return nil, fmt.Errorf("by: %w", err)
	}
	if d.D() <= 0 || d.D() > maxExtend {
		return nil, fmt.Errorf("by: want a duration from 1s to %s", settings.Duration(maxExtend))
	}
	x, err := s.o.Sessions.Extend(id, d.D())
	if err == nil {
		s.log.Info("session extended by staff", "session", id, "by_duration", d.String(), "by", u.Name)
	}
	return x, err
}

func (s *Server) apiExtend(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		By string `json:"by"`
	}
	err := decodeRequest(w, r, &req)
	if err != nil {
		writeErr(w, err)
		return
	}
	x, err := s.extend(u, r.PathValue("id"), req.By)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(x, s.now()))
}

func (s *Server) setRate(u *User, id, down, up string) (*store.Session, error) {
	// "" leaves that direction as it is.
	parse := func(field, v string) (settings.Rate, error) {
		if v == "" {
			return 0, nil
		}
		r, err := settings.ParseRate(v)
		if err != nil || r < 64_000 {
			return 0, fmt.Errorf("%s: want a rate of at least 64kbit like 4mbit, got %q", field, v)
		}
		return r, nil
	}
	d, err := parse("down", down)
	if err != nil {
		return nil, err
	}
	p, err := parse("up", up)
	if err != nil {
		return nil, err
	}
	if d == 0 && p == 0 {
		return nil, errors.New("give down, up or both")
	}
	x, err := s.o.Sessions.SetRate(id, uint64(d), uint64(p))
	if err == nil {
		s.log.Info("session rate changed by staff", "session", id, "down", uint64(d), "up", uint64(p), "by", u.Name)
	}
	return x, err
}

func (s *Server) apiRate(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		Down string `json:"down"`
		Up   string `json:"up"`
	}
	err := decodeRequest(w, r, &req)
	if err != nil {
		writeErr(w, err)
		return
	}
	x, err := s.setRate(u, r.PathValue("id"), req.Down, req.Up)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(x, s.now()))
}

func (s *Server) apiSite(w http.ResponseWriter, r *http.Request, u *User) {
	writeJSON(w, http.StatusOK, s.o.Settings.Get())
}

func (s *Server) apiSitePut(w http.ResponseWriter, r *http.Request, u *User) {
	b, err := readBody(w, r)
	if err != nil {
		writeErr(w, err)
		return
	}
	next, err := settings.DecodeJSON(b)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.updateSite(w, u, next)
}

func (s *Server) apiSitePatch(w http.ResponseWriter, r *http.Request, u *User) {
	b, err := readBody(w, r)
	if err != nil {
		writeErr(w, err)
		return
	}
	next, err := settings.Patch(s.o.Settings.Get(), b)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.updateSite(w, u, next)
}

func (s *Server) updateSite(w http.ResponseWriter, u *User, next settings.Site) {
	cur, err := s.o.Settings.Update(u.Name, next)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cur)
}

func (s *Server) apiSiteExport(w http.ResponseWriter, r *http.Request, u *User) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="site-profile.json"`)
	if err := s.o.Settings.Export(w); err != nil {
		s.log.Error("exporting site profile", "err", err)
	}
}

func (s *Server) apiSiteImport(w http.ResponseWriter, r *http.Request, u *User) {
	keep := r.URL.Query().Get("keep_names") == "1" || r.URL.Query().Get("keep_names") == "true"
	cur, err := s.o.Settings.Import(u.Name, http.MaxBytesReader(w, r.Body, maxBody), keep)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cur)
}

func (s *Server) apiAudit(w http.ResponseWriter, r *http.Request, u *User) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	before, _ := strconv.ParseUint(r.URL.Query().Get("before"), 10, 64)
	recs, err := s.o.Settings.Audit(limit, before)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if recs == nil {
		recs = []settings.AuditRecord{}
	}
	writeJSON(w, http.StatusOK, recs)
}

func (s *Server) apiUsers(w http.ResponseWriter, r *http.Request, u *User) {
	list, err := s.o.Users.List()
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if list == nil {
		list = []User{}
	}
	writeJSON(w, http.StatusOK, list)
}

// audit records an account change in the settings audit log, so staff
// see who gave whom which rights next to who changed what.
func (s *Server) audit(actor, field, old, new string) {
	if err := s.o.Settings.Record(actor, field, old, new); err != nil {
		s.log.Error("recording account change in the audit log", "field", field, "err", err)
	}
}

func (s *Server) addUser(actor *User, name, role, password string) error {
	rl, err := ParseRole(role)
	if err != nil {
		return err
	}
	if err := s.o.Users.Add(name, rl, password); err != nil {
		return err
	}
	s.audit(actor.Name, "account."+name, "", string(rl))
	return nil
}

func (s *Server) apiUserAdd(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Password string `json:"password"`
	}
	err := decodeRequest(w, r, &req)
	if err == nil {
		err = s.addUser(u, req.Name, req.Role, req.Password)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	usr, _ := s.o.Users.Get(req.Name)
	writeJSON(w, http.StatusCreated, usr)
}

func (s *Server) setRole(actor *User, name, role string) error {
	rl, err := ParseRole(role)
	if err != nil {
		return err
	}
	old, err := s.o.Users.Get(name)
	if err != nil {
		return err
	}
	if err := s.o.Users.SetRole(name, rl); err != nil {
		return err
	}
	if old.Role != rl {
		s.audit(actor.Name, "account."+name, string(old.Role), string(rl))
		s.endConsoleSessionsOf(name)
	}
	return nil
}

func (s *Server) setPassword(actor *User, name, password string) error {
	if err := s.o.Users.SetPassword(name, password); err != nil {
		return err
	}
	s.audit(actor.Name, "account."+name+".password", "", "(changed)")
	s.endConsoleSessionsOf(name)
	return nil
}

func (s *Server) apiUserPatch(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		Role     *string `json:"role"`
		Password *string `json:"password"`
	}
	name := r.PathValue("name")
	err := decodeRequest(w, r, &req)
	if err == nil && req.Role != nil {
		err = s.setRole(u, name, *req.Role)
	}
	if err == nil && req.Password != nil {
		err = s.setPassword(u, name, *req.Password)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	usr, err := s.o.Users.Get(name)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, usr)
}

func (s *Server) deleteUser(actor *User, name string) error {
	old, err := s.o.Users.Get(name)
	if err != nil {
		return err
	}
	if err := s.o.Users.Delete(name); err != nil {
		return err
	}
	s.audit(actor.Name, "account."+name, string(old.Role), "")
	s.endConsoleSessionsOf(name)
	return nil
}

func (s *Server) apiUserDelete(w http.ResponseWriter, r *http.Request, u *User) {
	if err := s.deleteUser(u, r.PathValue("name")); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiTokens(w http.ResponseWriter, r *http.Request, u *User) {
	name := r.PathValue("name")
	if _, err := s.o.Users.Get(name); err != nil {
		writeErr(w, err)
		return
	}
	list, err := s.o.Users.Tokens(name)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if list == nil {
		list = []TokenInfo{}
	}
	writeJSON(w, http.StatusOK, list)
}

// NewTokenResponse carries a token's only appearance.
type NewTokenResponse struct {
	Token string `json:"token"`
	TokenInfo
}

func (s *Server) newToken(actor *User, name, label string) (string, TokenInfo, error) {
	tok, info, err := s.o.Users.NewToken(name, label)
	if err == nil {
		s.audit(actor.Name, "account."+name+".token", "", info.ID)
	}
	return tok, info, err
}

func (s *Server) apiTokenAdd(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		Label string `json:"label"`
	}
	b, err := readBody(w, r)
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		err = decodeStrict(b, &req)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	tok, info, err := s.newToken(u, r.PathValue("name"), req.Label)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, NewTokenResponse{Token: tok, TokenInfo: info})
}

func (s *Server) apiTokenDelete(w http.ResponseWriter, r *http.Request, u *User) {
	name, id := r.PathValue("name"), r.PathValue("id")
	if err := s.o.Users.RevokeToken(name, id); err != nil {
		writeErr(w, err)
		return
	}
	s.audit(u.Name, "account."+name+".token", id, "")
	w.WriteHeader(http.StatusNoContent)
}
