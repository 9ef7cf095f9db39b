package portal

import (
	"encoding/json"
	"net/http"
	"time"
)

// captiveState is the RFC 8908 Captive Portal API document.
type captiveState struct {
	Captive          bool   `json:"captive"`
	UserPortalURL    string `json:"user-portal-url,omitempty"`
	VenueInfoURL     string `json:"venue-info-url,omitempty"`
	SecondsRemaining *int64 `json:"seconds-remaining,omitempty"`
	CanExtendSession *bool  `json:"can-extend-session,omitempty"`
}

// handleCaptiveAPI answers RFC 8908 for the device that asks, identified
// by its address and MAC as RFC 8952 requires: captive until it has an
// active session, then how long the session has left. Devices that use
// it (recent Android and iOS) skip probing and show the sign-in sheet
// straight away.
func (s *Server) handleCaptiveAPI(w http.ResponseWriter, r *http.Request) {
	st := captiveState{Captive: true, UserPortalURL: s.PortalURL(), VenueInfoURL: s.site().VenueURL}
	if ip, mac, err := s.device(r); err == nil {
		if sess, err := s.o.Sessions.ActiveFor(ip, mac); err == nil {
			left := int64(max(sess.Expires.Sub(s.o.Now()), 0) / time.Second)
			no := false
			st.Captive, st.SecondsRemaining, st.CanExtendSession = false, &left, &no
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/captive+json")
	// RFC 8908 §5: the state is per device; no shared cache may keep it.
	w.Header().Set("Cache-Control", "private")
	w.Write(b)
}
