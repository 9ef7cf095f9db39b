package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/portal"
	"github.com/parkwifi/parkportal/radius"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/sms"
	"github.com/parkwifi/parkportal/store"
)

// nas wires package radius to the session manager and the portal: the
// gateway as a RADIUS NAS, as CoovaChilli deployments know it.
type nas struct {
	cfg  config.Radius
	log  *slog.Logger
	mgr  *session.Manager
	acct *radius.Accounting // nil without accounting
	das  *radius.DAS        // nil when not listening
	info radius.NAS
	// secret is shared with the servers (from the config file, never the
	// console); empty when the config names none.
	secret string

	// Central authorisation is site policy, which staff change live
	// (settings → applyRADIUS); these fields are what is in force.
	authMu   sync.RWMutex
	auth     *radius.Authorizer // nil: no central authorisation
	failOpen bool
	// authTimeout bounds the wait for one authorisation server (5 s;
	// tests shorten it).
	authTimeout time.Duration

	mu          sync.Mutex
	lastInterim map[string]time.Time
}

// startNAS builds whatever `config radius` turns on. With nothing on it
// returns a nas whose methods do nothing.
func startNAS(cfg *config.Config, st *store.Store, mgr *session.Manager, log *slog.Logger) (*nas, error) {
	rc := cfg.Radius
	n := &nas{cfg: rc, log: log, mgr: mgr, lastInterim: map[string]time.Time{}, failOpen: rc.FailOpen}
	id := rc.NASIdentifier
	if id == "" {
		id = cfg.Site.ID
	}
	ip := rc.NASIP
	if !ip.IsValid() {
		ip = cfg.GatewayIP
	}
	var lanMAC net.HardwareAddr
	if ifc, err := net.InterfaceByName(cfg.LANIface); err == nil {
		lanMAC = ifc.HardwareAddr
	}
	info := radius.NAS{Identifier: id, IP: ip, CalledStationID: radius.CalledStationID(lanMAC, rc.CalledStationID)}
	n.info = info

	if radiusSecretConfigured(rc) {
		secret, err := sms.LoadSecret(rc.Secret, rc.SecretFile, radiusSecretEnv)
		if err != nil {
			return nil, fmt.Errorf("radius.secret: %w", err)
		}
		n.secret = secret
	}
	if rc.Accounting || rc.Authorization {
		secret := n.secret
		if secret == "" {
			return nil, fmt.Errorf("radius.secret: RADIUS is on but no secret is configured")
		}
		servers := func(list []string) []radius.Server {
			var out []radius.Server
			for _, a := range list {
				out = append(out, radius.Server{Addr: a, Secret: []byte(secret)})
			}
			return out
		}
		if rc.Accounting {
			c, err := radius.NewClient(radius.ClientConfig{Servers: servers(rc.AcctServers), Logger: log})
			if err != nil {
				return nil, fmt.Errorf("radius accounting client: %w", err)
			}
			// Sessions outlive the daemon: after any stop, crash or reboot
			// the active ones in the store are restored and go on, so the
			// server must keep them open. NewAccounting sends
			// Accounting-On only when there are none to restore.
			active, err := st.ActiveSessions()
			if err != nil {
				return nil, fmt.Errorf("radius accounting: reading active sessions: %w", err)
			}
			n.acct, err = radius.NewAccounting(radius.AccountingConfig{
				Client: c, NAS: info, DB: st.DB(), Logger: log, Continuing: len(active) > 0, MaxQueue: rc.AcctQueueMax,
			})
			if err != nil {
				return nil, fmt.Errorf("radius accounting: %w", err)
			}
			mgr.AddObserver(n)
		}
		if rc.Authorization {
			a, err := n.newAuthorizer(rc.AuthServers)
			if err != nil {
				return nil, err
			}
			n.auth = a
		}
	}
	if rc.DASListen != "" {
		secret, err := sms.LoadSecret(rc.DASSecret, rc.DASSecretFile, "PARKPORTAL_DAS_SECRET")
		if err != nil {
			return nil, fmt.Errorf("radius.das_secret: %w", err)
		}
		var clients []radius.DASClient
		for _, a := range rc.DASClients {
			clients = append(clients, radius.DASClient{IP: a, Secret: []byte(secret)})
		}
		n.das, err = radius.ListenDAS(radius.DASConfig{Addr: rc.DASListen, Clients: clients, Controller: dasController{mgr}, NAS: info, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("radius dynamic authorisation: %w", err)
		}
		log.Info("listening for RADIUS Disconnect/CoA", "addr", rc.DASListen, "clients", len(clients))
	}
	return n, nil
}

func (n *nas) newAuthorizer(addrs []string) (*radius.Authorizer, error) {
	var servers []radius.Server
	for _, a := range addrs {
		servers = append(servers, radius.Server{Addr: a, Secret: []byte(n.secret)})
	}
	// A visitor waits at the PIN page for this answer, and the portal
	// gives it 15 s: each server gets authTimeout (1 s, 2 s, then 2 s
	// retransmits), so a silent primary still leaves time for a secondary,
	// and with neither answering the site's fail policy applies in time.
	t := n.authTimeout
	if t == 0 {
		t = 5 * time.Second
	}
	c, err := radius.NewClient(radius.ClientConfig{
		Servers: servers, Logger: n.log,
		InitialTimeout: t / 5, MaxTimeout: 2 * t / 5, MaxRetransmits: 2, MaxDuration: t,
	})
	if err != nil {
		return nil, fmt.Errorf("radius authorisation client: %w", err)
	}
	a, err := radius.NewAuthorizer(radius.AuthConfig{Client: c, NAS: n.info, Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("radius authorisation: %w", err)
	}
	return a, nil
}

// applyPolicy puts the site's RADIUS policy from the console into force:
// central authorisation on or off, against which servers, failing open or
// closed. The shared secret stays in the config file.
func (n *nas) applyPolicy(enabled bool, servers []string, failOpen bool) error {
	var a *radius.Authorizer
	if enabled {
		if n.secret == "" {
			return errors.New("central authorisation needs radius.secret (or secret_file) in the config file")
		}
		var err error
		if a, err = n.newAuthorizer(servers); err != nil {
			return err
		}
	}
	n.authMu.Lock()
	n.auth, n.failOpen = a, failOpen
	n.authMu.Unlock()
	return nil
}

// policy reports what is in force, to seed the console's settings.
func (n *nas) policy() (enabled bool, servers []string, failOpen bool) {
	n.authMu.RLock()
	defer n.authMu.RUnlock()
	return n.auth != nil, append([]string(nil), n.cfg.AuthServers...), n.failOpen
}

// Authorize applies the site's fail policy to a RADIUS decision; without
// central authorisation the visitor gets the site's defaults.
func (n *nas) Authorize(ctx context.Context, phone string, mac net.HardwareAddr, ip netip.Addr) (*session.Grant, error) {
	n.authMu.RLock()
	auth, failOpen := n.auth, n.failOpen
	n.authMu.RUnlock()
	if auth == nil {
		return nil, nil
	}
	d, err := auth.Authorize(ctx, phone, mac, ip)
	switch {
	case errors.Is(err, radius.ErrUnreachable) && failOpen:
		n.log.Warn("RADIUS unreachable; letting the visitor in with the site's defaults (fail_policy open)", "err", err)
		return nil, nil
	case err != nil:
		return nil, err
	case d.Reject:
		return nil, &portal.Rejected{Reason: d.ReplyMessage}
	}
	return &session.Grant{
		SessionTimeout: d.SessionTimeout, IdleTimeout: d.IdleTimeout,
		RateDown: d.RateDown, RateUp: d.RateUp,
		InterimInterval: d.InterimInterval, Class: d.Class,
	}, nil
}

func radiusSession(s *store.Session) radius.Session {
	return radius.Session{
		ID: s.ID, Phone: s.Phone, MAC: s.MAC, IP: s.IP, Start: s.Start,
		BytesIn: s.BytesUp, BytesOut: s.BytesDown, PacketsIn: s.PacketsUp, PacketsOut: s.PacketsDown,
		Class: s.Class,
	}
}

var terminateCause = map[store.EndReason]radius.TerminateCause{
	store.ReasonExpired:  radius.TerminateSessionTimeout,
	store.ReasonIdle:     radius.TerminateIdleTimeout,
	store.ReasonLogout:   radius.TerminateUserRequest,
	store.ReasonKicked:   radius.TerminateAdminReset,
	store.ReasonReplaced: radius.TerminateNASRequest,
}

// SessionStarted queues Accounting Start.
func (n *nas) SessionStarted(s *store.Session) {
	if err := n.acct.Start(radiusSession(s)); err != nil {
		n.log.Error("queueing Accounting-Start", "session", s.ID, "err", err)
	}
	n.mu.Lock()
	n.lastInterim[s.ID] = s.Start
	n.mu.Unlock()
}

// SessionEnded queues Accounting Stop with the reason as
// Acct-Terminate-Cause.
func (n *nas) SessionEnded(s *store.Session) {
	cause, ok := terminateCause[s.EndReason]
	if !ok {
		cause = radius.TerminateNASError
	}
	if err := n.acct.Stop(radiusSession(s), cause); err != nil {
		n.log.Error("queueing Accounting-Stop", "session", s.ID, "err", err)
	}
	n.mu.Lock()
	delete(n.lastInterim, s.ID)
	n.mu.Unlock()
}

// runInterim sends Interim-Updates for sessions whose interval passed.
func (n *nas) runInterim(ctx context.Context) {
	if n.acct == nil {
		return
	}
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			live, err := n.mgr.Live()
			if err != nil {
				n.log.Error("listing sessions for accounting", "err", err)
				continue
			}
			for _, s := range live {
				every := s.InterimInterval
				if every <= 0 {
					every = n.cfg.InterimInterval
				}
				n.mu.Lock()
				last, ok := n.lastInterim[s.ID]
				if !ok {
					last = s.Start
				}
				due := now.Sub(last) >= every
				if due {
					n.lastInterim[s.ID] = now
				}
				n.mu.Unlock()
				if due {
					if err := n.acct.Interim(radiusSession(s)); err != nil {
						n.log.Error("queueing Interim-Update", "session", s.ID, "err", err)
					}
				}
			}
		}
	}
}

// close stops the NAS and sends no Accounting-Off, whether or not the
// firewall state was kept (keptFirewall): either way the sessions stay
// active in the store and the next start restores them, so telling the
// server they ended would be false, and the Start of a restored session
// is not sent again. Sessions that really end, also while the daemon is
// down (their expiry passes), get their Stop from the next sweep.
func (n *nas) close() {
	if n.das != nil {
		n.das.Close()
	}
	if n.acct != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.acct.Close(ctx, radius.CloseOptions{Restarting: true}); err != nil {
			n.log.Error("closing accounting", "err", err)
		}
	}
}

// queueLen is the accounting queue's length, for metrics.
func (n *nas) queueLen() int {
	if n.acct == nil {
		return 0
	}
	return n.acct.QueueLen()
}

// dropped is how many accounting records a full queue gave up since the
// database was created, for metrics.
func (n *nas) dropped() uint64 {
	if n.acct == nil {
		return 0
	}
	return n.acct.Dropped()
}

// dasController lets RFC 5176 requests act on sessions.
type dasController struct{ mgr *session.Manager }

func (c dasController) find(m radius.Match) ([]*store.Session, error) {
	return c.mgr.Find(session.Match{ID: m.SessionID, Phone: m.UserName, MAC: m.MAC, IP: m.IP})
}

// Disconnect ends the matched sessions (Acct-Terminate-Cause Admin-Reset).
func (c dasController) Disconnect(m radius.Match) (int, error) {
	list, err := c.find(m)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, s := range list {
		if _, err := c.mgr.End(s.ID, store.ReasonKicked); err != nil {
			errs = append(errs, err)
		}
	}
	return len(list), errors.Join(errs...)
}

// Change applies only the attributes the CoA carried.
func (c dasController) Change(m radius.Match, ch radius.Change) (int, error) {
	list, err := c.find(m)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, s := range list {
		if ch.RateDown != nil || ch.RateUp != nil {
			var down, up uint64
			if ch.RateDown != nil {
				down = *ch.RateDown
			}
			if ch.RateUp != nil {
				up = *ch.RateUp
			}
			if _, err := c.mgr.SetRate(s.ID, down, up); err != nil {
				errs = append(errs, err)
			}
		}
		if ch.SessionTimeout != nil || ch.IdleTimeout != nil {
			if _, err := c.mgr.SetTimeouts(s.ID, ch.SessionTimeout, ch.IdleTimeout); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return len(list), errors.Join(errs...)
}
