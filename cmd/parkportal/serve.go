package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parkwifi/parkportal/admin"
	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/limits"
	"github.com/parkwifi/parkportal/metrics"
	"github.com/parkwifi/parkportal/netlimit"
	"github.com/parkwifi/parkportal/pin"
	"github.com/parkwifi/parkportal/portal"
	"github.com/parkwifi/parkportal/session"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/sms"
	"github.com/parkwifi/parkportal/store"
)

func newLogger(level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func firewallConfig(c *config.Config, log *slog.Logger) firewall.Config {
	tlsPort := 0
	if c.TLSCert != "" {
		tlsPort = c.TLSPort
	}
	coaPort := 0
	if ap, err := netip.ParseAddrPort(c.Radius.DASListen); err == nil {
		coaPort = int(ap.Port())
	}
	return firewall.Config{
		TLSPort: tlsPort, CoAPort: coaPort,
		LANIface: c.LANIface, LANPrefix: c.LANPrefix, GatewayIP: c.GatewayIP,
		PortalPort: c.PortalPort, AdminPort: c.AdminPort(),
		WalledGarden: c.Site.WalledGarden, TrustedMACs: c.TrustedMACs, Logger: log,
		Shaping: c.Shaping, IFBName: c.IFBName, UplinkDown: c.Site.UplinkDown, UplinkUp: c.Site.UplinkUp,
		Backend: c.FirewallBackend,
	}
}

// newSender builds the configured SMS provider from `config sms`.
func newSender(c *config.Config) (sms.Sender, error) {
	o := c.SMS
	headers := map[string]string{}
	for _, h := range c.SMSHeaders {
		name, value, _ := strings.Cut(h, ":")
		headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	s, err := sms.New(sms.ProviderConfig{
		Provider: o["provider"], Outbox: o["outbox"],
		TwilioAccountSID: o["twilio_account_sid"], TwilioAuthToken: o["twilio_auth_token"],
		TwilioAuthTokenFile: o["twilio_auth_token_file"], TwilioAuthTokenEnv: o["twilio_auth_token_env"],
		TwilioFrom: o["twilio_from"], TwilioMessagingServiceSID: o["twilio_messaging_service_sid"],
		TwilioValidity: o["twilio_validity"], TwilioAPIURL: os.Getenv(sms.TwilioAPIURLEnv),
		HTTPURL: o["http_url"], HTTPMethod: o["http_method"], HTTPMode: o["http_mode"],
		HTTPBodyTemplate: o["http_body_template"], HTTPHeaders: headers,
		HTTPAuthHeader: o["http_auth_header"], HTTPAuthValue: o["http_auth_value"],
		HTTPAuthFile: o["http_auth_file"], HTTPAuthEnv: o["http_auth_env"],
		HTTPSuccessStatus: o["http_success_status"], HTTPSuccessContains: o["http_success_contains"],
		HTTPSuccessJSONField: o["http_success_json_field"], HTTPSuccessJSONValue: o["http_success_json_value"],
		HTTPNumberFormat: o["http_number_format"], HTTPCountryCode: o["http_country_code"],
		Timeout: o["timeout"], RetryAttempts: o["retry_attempts"], RetryBackoff: o["retry_backoff"],
		RetryDeadline: o["retry_deadline"], BreakerFailures: o["breaker_failures"], BreakerCooldown: o["breaker_cooldown"],
	})
	if err != nil {
		return nil, fmt.Errorf("config sms: %w", err)
	}
	return s, nil
}

// watchSMSFaults makes an operator fault (the SMS provider refusing our
// account: credentials, credit, suspension) reach staff: an error in the
// log when it starts, the parkportal_sms_paused gauge (met returns nil
// until the metrics exist) and, through the returned func, the console's
// banner. It returns nil for a sender without a breaker (the console
// sender of the lab).
func watchSMSFaults(sender sms.Sender, log *slog.Logger, met func() *metrics.Metrics) admin.SMSFault {
	b, ok := sender.(*sms.Breaker)
	if !ok {
		return nil
	}
	b.OnFault = func(e *sms.Error) {
		log.Error("the SMS provider refuses parkportal's account: sending is paused and visitors are told to try again later; check the credentials and the credit",
			"provider", e.Provider, "code", e.Code, "err", e)
		if m := met(); m != nil {
			m.SetSMSPaused(true)
		}
	}
	return func() (string, time.Time, bool) {
		f, since := b.Fault()
		if f == nil {
			return "", time.Time{}, false
		}
		return f.Code, since, true
	}
}

// limitsConfig maps the site's SMS caps onto the limiter's settings.
func limitsConfig(s config.Site, tz *time.Location) limits.Config {
	lc := limits.DefaultConfig()
	lc.Location = tz
	lc.SMSPerNumber, lc.SMSPerDevice, lc.DailyBudget = s.SMSPerNumber, s.SMSPerDevice, s.SMSDailyBudget
	lc.ResendGap = s.SMSResendGap
	if lc.ResendGap == 0 {
		lc.ResendGap = -1 // off
	}
	return lc
}

// defaultMemoryLimit is the daemon's soft heap limit when GOMEMLIMIT is
// not set.
const defaultMemoryLimit = 32 << 20

func cmdServe(args []string) error {
	fs := newFlags("serve", "serve [--config FILE | --lab-defaults]   run the daemon")
	// Kept so that old init scripts still start: a stop always leaves the
	// gate in place now.
	fs.Bool("keep-firewall", true, "no effect: a stop always leaves the gate closed and visitors online ('parkportal cleanup' removes it)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	slog.SetDefault(log)
	// A soft memory limit keeps the heap small on a router: the GC works
	// harder near it rather than letting the heap double. GOMEMLIMIT (the
	// OpenWrt init script sets it from the router's RAM) takes precedence.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}

	// Signals first: until Notify, SIGHUP or SIGUSR1 (a firewall reload's
	// resync request) would kill the process during start-up.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	resync := make(chan os.Signal, 1)
	signal.Notify(resync, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(resync)

	// Listen before touching the kernel, so a port in use or a bad
	// certificate stops the start with nothing to clean up.
	addr := netip.AddrPortFrom(cfg.GatewayIP, uint16(cfg.PortalPort))
	plainLn, err := net.Listen("tcp", addr.String())
	if err != nil {
		return fmt.Errorf("listening for visitors on %s: %w", addr, err)
	}
	ln := net.Listener(netlimit.Listen(plainLn, cfg.MaxConnsPerDevice, log))
	defer ln.Close()
	var tln net.Listener
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("loading the portal's certificate: %w", err)
		}
		tlsAddr := netip.AddrPortFrom(cfg.GatewayIP, uint16(cfg.TLSPort)).String()
		plain, err := net.Listen("tcp", tlsAddr)
		if err != nil {
			return fmt.Errorf("listening for visitors (HTTPS) on %s: %w", tlsAddr, err)
		}
		tln = tls.NewListener(netlimit.Listen(plain, cfg.MaxConnsPerDevice, log), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		defer tln.Close()
	}

	if ok, err := store.CompactIfBloated(cfg.DBPath); err != nil {
		log.Warn("compacting the store failed; starting with it as it is", "err", err)
	} else if ok {
		log.Info("compacted the store", "path", cfg.DBPath)
	}
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := pin.LoadOrCreateKey(cfg.SecretFile)
	if err != nil {
		return err
	}
	fw, err := firewall.New(firewallConfig(cfg, log))
	if err != nil {
		return err
	}
	sender, err := newSender(cfg)
	if err != nil {
		return err
	}
	if u := os.Getenv(sms.TwilioAPIURLEnv); u != "" && cfg.SMS["provider"] == "twilio" {
		log.Warn("TEST ONLY: "+sms.TwilioAPIURLEnv+" is set: Twilio requests go to a fake Twilio, not api.twilio.com; no visitor gets a real SMS. Unset it on a real gateway.",
			"url", u)
	}
	var met *metrics.Metrics // set once the admin side is up
	smsFault := watchSMSFaults(sender, log, func() *metrics.Metrics { return met })
	lim, err := limits.Open(st.DB(), limitsConfig(cfg.Site, cfg.Timezone), time.Now)
	if err != nil {
		return fmt.Errorf("opening SMS limits: %w", err)
	}
	mgr := session.NewManager(session.Options{
		Store: st, Gate: fw, Site: cfg.Site.ID, Logger: log,
		LANPrefix: cfg.LANPrefix, Neighbors: fw,
		OnRepair: func(n int) {
			if met != nil {
				met.FirewallRepairs(n)
			}
		},
		OnTraffic: func(down, up uint64) {
			if met != nil {
				met.AddBytes(down, up)
			}
		},
		Policy: session.Policy{
			SessionTimeout: cfg.Site.SessionTimeout, IdleTimeout: cfg.Site.IdleTimeout,
			RateDown: cfg.Site.RateDown, RateUp: cfg.Site.RateUp,
		},
	})
	radiusNAS, err := startNAS(cfg, st, mgr, log)
	if err != nil {
		return err
	}
	start := time.Now()
	// Only failing to build our chains, set and qdiscs stops the start:
	// sessions the kernel cannot take are ended (and logged) by Restore,
	// since a failed start under procd is a respawn loop.
	if err := mgr.Restore(); err != nil {
		return fmt.Errorf("restoring sessions into the kernel: %w", err)
	}
	if err := markGated(cfg.DBPath, firewallConfig(cfg, log), fw.Backend()); err != nil {
		log.Warn("the next boot will not shut the gate before this daemon starts", "err", err)
	}
	active, _ := st.ActiveSessions()
	log.Info("kernel state restored from store", "firewall", fw.Backend(), "active_sessions", len(active), "took", time.Since(start).Round(time.Millisecond))

	srv, err := portal.New(portal.Options{
		Site: portal.Site{
			ID: cfg.Site.ID, NameAR: cfg.Site.NameAR, NameEN: cfg.Site.NameEN,
			PhoneRegion: cfg.Site.PhoneRegion, AllowedPrefixes: cfg.Site.AllowedPrefixes,
			PINTTL: cfg.Site.PINTTL, PINMaxTries: cfg.Site.PINMaxTries, PrivacyURL: cfg.Site.PrivacyURL,
			VenueURL: cfg.Site.VenueURL, RequireTerms: cfg.Site.RequireTerms, TermsURL: cfg.Site.TermsURL,
		},
		Addr: addr, TLSHost: tlsHost(cfg), Sessions: mgr, Store: st, SMS: sender, Limits: lim, Auth: radiusNAS, Neigh: fw, PINKey: key, Logger: log,
	})
	if err != nil {
		return err
	}
	adm, err := startAdmin(ctx, cfg, st, mgr, radiusNAS.alerts, log)
	if err != nil {
		return err
	}
	met = adm.Metrics
	srv.SetEvents(adm.Metrics)
	if smsFault != nil {
		adm.Server.SetSMSFault(smsFault)
	}
	radiusNAS.setMetrics(adm.Metrics)
	// Site policy lives in the store (reconciled with the config file at
	// start, see settings.Open); staff change it in the console and it
	// applies here, live, without a restart. RADIUS is the file's.
	apply := func(s settings.Site) { applySite(s, cfg, st, srv, fw, log) }
	apply(adm.Settings.Get())
	adm.Settings.OnChange(apply)
	// Ask every RADIUS server how it is before visitors come: a server
	// whose answers cannot be trusted is reported now (log, metric,
	// console banner), not at the first refused login.
	probeCtx, probeCancel := context.WithTimeout(ctx, 6*time.Second)
	radiusNAS.probe(probeCtx)
	probeCancel()
	// The background loops run until the stop, which waits for every one
	// of them before it tears the firewall down: a resync or sweep still
	// in flight would otherwise rebuild chains or set after Teardown (or
	// queue accounting after RADIUS closed).
	bg := newBackground(ctx)
	defer bg.Stop() // on every return; a second Stop is a no-op
	bg.Go(func(ctx context.Context) {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				met.SetRADIUSQueue(radiusNAS.queueLen(), radiusNAS.dropped())
				if smsFault != nil {
					_, _, paused := smsFault()
					met.SetSMSPaused(paused)
				}
			}
		}
	})
	bg.Go(func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case <-resync:
				mgr.RequestResync()
			}
		}
	})
	bg.Go(func(ctx context.Context) { mgr.Run(ctx, 5*time.Second, cfg.ResyncInterval) })
	// Someone flushing the firewall (or fw4 reloading) is repaired as soon
	// as the kernel announces it, not at the next periodic resync.
	if err := fw.Watch(ctx, mgr.RequestResync); err != nil {
		log.Warn("not watching the firewall for changes; drift is repaired at the periodic resync only", "resync_interval", cfg.ResyncInterval, "err", err)
	}
	bg.Go(func(ctx context.Context) { purgeLoop(ctx, st, cfg.Retention, cfg.MaxSessions, log) })
	bg.Go(radiusNAS.runInterim)
	bg.Go(radiusNAS.runDrain)
	bg.Go(radiusNAS.runProbe)
	bg.Go(func(ctx context.Context) { watchDevices(ctx, cfg.LANIface, cfg.LANPrefix, mgr, log) })

	httpSrv := newHTTPServer(srv)
	errc := make(chan error, 2)
	go func() { errc <- httpSrv.Serve(ln) }()
	var tlsSrv *http.Server
	if tln != nil {
		tlsSrv = newHTTPServer(srv)
		go func() { errc <- tlsSrv.Serve(tln) }()
	}
	log.Info("parkportal serving", "portal", srv.PortalURL(), "captive_api", srv.APIURL(), "site", cfg.Site.ID, "version", versionString())
	// Starting (config, store, templates, the kernel's state read back)
	// leaves garbage the heap would keep mapped until the scavenger's
	// slow pace reaches it; on a router that is about half a MiB held for
	// nothing. Hand it back once, now that only the steady state runs.
	debug.FreeOSMemory()

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("portal server stopped", "err", err)
		}
	}
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	httpSrv.Shutdown(shutdownCtx)
	if tlsSrv != nil {
		tlsSrv.Shutdown(shutdownCtx)
	}
	// The loops end sessions (observers queue RADIUS Stops), count
	// traffic for the dashboard and resync the kernel: all of it must be
	// over before the counters are saved and RADIUS closes.
	bg.Stop()
	if err := met.Save(); err != nil {
		log.Warn("dashboard counters not saved", "err", err)
	}
	radiusNAS.close()
	// The gate stays: visitors online stay online, captive ones stay
	// captive (with no portal to answer them) until the next start. Only
	// 'parkportal cleanup' opens it.
	log.Info("stopped; the firewall gate stays closed until the next start ('parkportal cleanup' removes it)")
	return nil
}

// background runs the daemon's loops and lets the stop wait for them.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newBackground returns loops that stop when parent ends or on Stop,
// whichever comes first (the portal server failing stops the daemon
// without parent ending).
func newBackground(parent context.Context) *background {
	ctx, cancel := context.WithCancel(parent)
	return &background{ctx: ctx, cancel: cancel}
}

// Go runs loop in its own goroutine; loop must return soon after its
// context is done.
func (b *background) Go(loop func(ctx context.Context)) {
	b.wg.Go(func() { loop(b.ctx) })
}

// Stop tells the loops to stop and returns once every one has returned.
func (b *background) Stop() {
	b.cancel()
	b.wg.Wait()
}

// newHTTPServer bounds everything a client controls: header size and
// read time (slowloris), body size (in the handler), idle connections.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second, // an SMS send may take a while
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug),
	}
}

func cmdConfigCheck(args []string) error {
	cfg, err := loadConfig(newFlags("config check", "config check [--config FILE | --lab-defaults]   validate a config file and its SMS provider settings"), args)
	if err != nil {
		return err
	}
	// The SMS section is read by package sms: build the sender (nothing
	// is sent) so a bad number format or template fails here, not at
	// the first visitor.
	if _, err := newSender(cfg); err != nil {
		return err
	}
	fmt.Printf("config ok: site %q (%s / %s), LAN %s on %s, portal %s:%d, rates %s down / %s up, SMS via %s, day ends at midnight %s (now UTC%s)\n",
		cfg.Site.ID, cfg.Site.NameEN, cfg.Site.NameAR, cfg.LANPrefix, cfg.LANIface, cfg.GatewayIP, cfg.PortalPort,
		config.FormatRate(cfg.Site.RateDown), config.FormatRate(cfg.Site.RateUp), cfg.SMS["provider"],
		cfg.Timezone, time.Now().In(cfg.Timezone).Format("-07:00"))
	return nil
}

// cmdDBCheck checks the state file read-only, page check first: a
// damaged file is reported with its path and what to do, never by a
// panic, and checking it writes nothing that could make it worse.
func cmdDBCheck(args []string) error {
	cfg, err := loadConfig(newFlags("db check", "db check [--config FILE | --lab-defaults]   verify the state database, read-only"), args)
	if err != nil {
		return err
	}
	sum, err := store.CheckFile(cfg.DBPath)
	if err != nil {
		return err
	}
	fmt.Printf("db ok: %s, schema %d, %d sessions (%d active)\n", cfg.DBPath, sum.Schema, sum.Sessions, sum.Active)
	if sum.Schema < store.SchemaVersion {
		fmt.Printf("the next start of parkportal serve migrates it to schema %d\n", store.SchemaVersion)
	}
	return nil
}

func cmdCleanup(args []string) error {
	cfg, err := loadConfig(newFlags("cleanup", "cleanup [--config FILE | --lab-defaults]   remove parkportal's chains, allowlist set and shaping (after a crash)"), args)
	if err != nil {
		return err
	}
	fw, err := firewall.New(firewallConfig(cfg, newLogger(cfg.LogLevel)))
	if err != nil {
		return err
	}
	if err := fw.Teardown(); err != nil {
		return err
	}
	// The gate is gone for good: the next boot must not shut it again.
	if err := os.Remove(gatedMarker(cfg.DBPath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", gatedMarker(cfg.DBPath), err)
	}
	return nil
}

// purgeLoop deletes ended sessions older than the retention period, at
// start and then hourly: phone numbers are personal data and are kept
// no longer than the site's stated period.
func purgeLoop(ctx context.Context, st *store.Store, retention time.Duration, maxSessions int, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := st.Purge(time.Now().Add(-retention))
		if err != nil {
			log.Error("purging old sessions", "err", err)
		} else if n > 0 {
			log.Info("purged ended sessions past retention", "sessions", n, "retention", retention)
		}
		if n, err := st.PurgeExcess(maxSessions); err != nil {
			log.Error("bounding the stored sessions", "err", err)
		} else if n > 0 {
			log.Info("purged the oldest ended sessions over the store's bound", "sessions", n, "max_sessions", maxSessions)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tlsHost is the host:port HTTPS pages are served under, or "".
func tlsHost(c *config.Config) string {
	if c.TLSCert == "" {
		return ""
	}
	host := c.PortalHostname
	if host == "" {
		host = c.GatewayIP.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(c.TLSPort))
}

// cmdDBExport writes the session log for the ministry: every stored
// session (phone, device, address, times, traffic) as CSV or JSON lines.
func cmdDBExport(args []string) error {
	fs := newFlags("db export", "db export [--config FILE | --lab-defaults] [--format csv|json]   the session log (stop the daemon first)")
	format := fs.String("format", "csv", "csv or json")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Export(os.Stdout, *format)
}
