package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parkwifi/parkportal/admin"
	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/settings"
)

// sessionsSynopses are each sessions subcommand's usage line.
var sessionsSynopses = map[string]string{
	"list":   "sessions list   [--config FILE] [SEARCH]   active sessions; SEARCH matches phone, MAC or IP",
	"kick":   "sessions kick   [--config FILE] ID   disconnect a visitor now",
	"extend": "sessions extend [--config FILE] ID DURATION   e.g. 30m, 2h",
}

func sessionsUsage() error {
	return errors.New(`usage:
  parkportal sessions list   [--config FILE] [SEARCH]      active sessions; SEARCH matches phone, MAC or IP
  parkportal sessions kick   [--config FILE] ID            disconnect a visitor now
  parkportal sessions extend [--config FILE] ID DURATION   e.g. 30m, 2h
With the daemon down, kick and extend change the store; the daemon applies them when it starts`)
}

// cmdSessions is `parkportal sessions ...`: visitors' sessions.
func cmdSessions(args []string) error {
	if len(args) == 0 {
		return sessionsUsage()
	}
	sub := args[0]
	if isHelp(sub) {
		return showHelp(sessionsUsage())
	}
	synopsis, ok := sessionsSynopses[sub]
	if !ok {
		return sessionsUsage()
	}
	c, _, rest, err := openAPI(newFlags("sessions "+sub, synopsis), args[1:])
	if err != nil {
		return err
	}
	defer c.close()
	switch {
	case sub == "list" && len(rest) <= 1:
		q := ""
		if len(rest) == 1 {
			q = rest[0]
		}
		var list []admin.SessionView
		if err := c.do("GET", "/api/v1/sessions?q="+url.QueryEscape(q), nil, &list); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPHONE\tMAC\tIP\tDEVICE\tLEFT\tRATE DOWN/UP\tBYTES DOWN/UP")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%d/%d\n", s.ID, s.Phone, s.MAC, s.IP, terminalSafe(s.Hostname, 24),
				settings.Duration(time.Duration(s.SecondsLeft)*time.Second), config.FormatRate(s.RateDown), config.FormatRate(s.RateUp), s.BytesDown, s.BytesUp)
		}
		return tw.Flush()
	case sub == "kick" && len(rest) == 1:
		if err := c.do("POST", "/api/v1/sessions/"+url.PathEscape(rest[0])+"/kick", nil, nil); err != nil {
			return err
		}
		fmt.Printf("session %s ended\n", rest[0])
		return nil
	case sub == "extend" && len(rest) == 2:
		var s admin.SessionView
		if err := c.do("POST", "/api/v1/sessions/"+url.PathEscape(rest[0])+"/extend", jsonBody(map[string]string{"by": rest[1]}), &s); err != nil {
			return err
		}
		fmt.Printf("session %s now ends at %s\n", s.ID, s.Expires.Local().Format("15:04"))
		return nil
	}
	return sessionsUsage()
}

// defaultSiteForCheck is the site that command-line patches are checked
// against for field names and types (values are validated by the daemon).
func defaultSiteForCheck() config.Site { return config.Defaults().Site }

// terminalSafe prepares a device-supplied name (the DHCP hostname, which
// any visitor sets) for a staff terminal: control characters, which
// could carry escape sequences, become '?', tabs and spaces that would
// break the columns become '_', and it is cut to max runes; "-" if empty.
func terminalSafe(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		switch {
		case unicode.IsSpace(r):
			r = '_'
		case unicode.IsControl(r) || r == utf8.RuneError || unicode.Is(unicode.Bidi_Control, r):
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}
