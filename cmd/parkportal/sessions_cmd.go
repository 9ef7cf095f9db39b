package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/parkwifi/parkportal/admin"
	"github.com/parkwifi/parkportal/config"
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
		// The daemon (or, with it stopped, the store's local API in this
		// process) renders the table: see admin.wantsText.
		return c.text("/api/v1/sessions?q="+url.QueryEscape(q), os.Stdout)
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
