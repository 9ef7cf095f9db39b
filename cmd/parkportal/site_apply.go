package main

import (
	"log/slog"
	"time"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/limits"
	"github.com/parkwifi/parkportal/portal"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/store"
)

// applySite puts the stored site policy into effect: the portal's texts
// (terms included) and rules, the SMS caps, the walled garden and the
// uplink capacity. (Session timeouts and rates are applied to sessions
// by startAdmin; the portal gets the download rate only to state it on
// the splash page.)
func applySite(s settings.Site, cfg *config.Config, st *store.Store, srv *portal.Server, fw *firewall.Firewall, log *slog.Logger) {
	srv.SetSite(portal.Site{
		ID: s.ID, NameAR: s.NameAR, NameEN: s.NameEN,
		PhoneRegion: s.PhoneRegion, AllowedPrefixes: s.AllowedPrefixes,
		PINTTL: s.PINTTL.D(), PINMaxTries: s.PINMaxTries, PrivacyURL: s.PrivacyURL,
		VenueURL: s.VenueURL, RequireTerms: s.RequireTerms, TermsURL: s.TermsURL,
		TermsAR: s.TermsAR, TermsEN: s.TermsEN, RateDown: uint64(s.RateDown),
		SMSTemplates: s.SMSTemplates, RetentionDays: int(cfg.Retention / (24 * time.Hour)),
	})
	site := cfg.Site
	site.SMSPerNumber, site.SMSPerDevice, site.SMSDailyBudget = s.SMSPerNumberHour, s.SMSPerDeviceHour, s.SMSDailyBudget
	if lim, err := limits.Open(st.DB(), limitsConfig(site, cfg.Timezone), time.Now); err != nil {
		log.Error("applying SMS caps", "err", err)
	} else {
		srv.SetLimits(lim)
	}
	if err := fw.SetWalledGarden(s.WalledGardenPrefixes()); err != nil {
		log.Error("applying walled garden", "err", err)
	}
	if err := fw.SetUplink(uint64(s.UplinkDown), uint64(s.UplinkUp)); err != nil {
		log.Error("applying uplink capacity", "err", err)
	}
}
