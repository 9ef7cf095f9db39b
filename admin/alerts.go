package admin

import (
	"sync/atomic"
	"time"

	"github.com/parkwifi/parkportal/i18n"
)

// SMSFault reports an operator fault that has paused SMS sending: the
// provider's code ("http-402", "20003"), since when, and ok false while
// sending works.
type SMSFault func() (code string, since time.Time, ok bool)

// smsFaults holds each Server's SMSFault, set by SetSMSFault while the
// console may already be serving.
type smsFaults struct{ f atomic.Pointer[SMSFault] }

// SetSMSFault tells the console how to learn that the SMS provider
// refuses our account; every console page then shows a banner saying so
// until sending works again.
func (s *Server) SetSMSFault(f SMSFault) { s.smsFault.f.Store(&f) }

// alerts are the banners every console page shows: conditions that stop
// visitors from logging in and only staff can fix.
func (s *Server) alerts(p *page) []string {
	var out []string
	if f := s.smsFault.f.Load(); f != nil {
		if code, since, ok := (*f)(); ok {
			out = append(out, i18n.Fill(p.T("alert.sms-paused"), code, since.In(p.loc).Format("2006-01-02 15:04")))
		}
	}
	if s.o.Alerts != nil {
		out = append(out, s.o.Alerts(p.Lang)...)
	}
	return out
}
