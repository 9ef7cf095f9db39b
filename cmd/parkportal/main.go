// Command parkportal is the captive-portal controller for free public-park
// Wi-Fi: visitors log in with their mobile number and an SMS PIN and are
// let out through the gateway's firewall, shaped to the park's rate.
//
//	parkportal serve [--config FILE]                   run the daemon
//	parkportal lab [--check]                           a virtual park in network namespaces (built with -tags lab only)
//	parkportal config check [--config FILE]            validate a config file
//	parkportal db check [--config FILE]                verify the state database
//	parkportal db export [--config FILE] [--format json] the session log, for the ministry
//	parkportal close-gate [--config FILE]              at boot: shut the gate before the LAN is up
//	parkportal cleanup [--config FILE]                 remove the firewall gate (the only command that opens it)
//	parkportal version
//
// The config is FILE, else /etc/config/parkportal if it exists; only
// --lab-defaults uses the lab's embedded one.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return // --help printed what was asked
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parkportal:", err)
		os.Exit(1)
	}
}

func usage() error {
	return fmt.Errorf(`usage:
  parkportal serve [--config FILE]   run the daemon
  parkportal lab [--check]           build a virtual park in network namespaces and run the daemon in it
                                     (development builds only: scripts/lab.sh, or go build -tags lab)
  parkportal config check [--config FILE]
  parkportal db check [--config FILE]
  parkportal db export [--config FILE] [--format csv|json]   the session log (stop the daemon first)
  parkportal admin add-user|passwd|role|token|list ...   staff accounts
  parkportal site get|set|export|import ...               site policy and profiles
  parkportal sessions list|kick|extend ...                visitors' sessions
  parkportal close-gate [--config FILE]   at boot, before the LAN is up: the gate with nobody let through
  parkportal cleanup [--config FILE] remove parkportal's chains and allowlist set
  parkportal version
The config is FILE, else %s if it exists; --lab-defaults instead uses
the lab's virtual park. Every command takes --help`, defaultConfigPath)
}

func configUsage() error {
	return errors.New("usage: parkportal config check [--config FILE | --lab-defaults]   validate a config file")
}

func dbUsage() error {
	return errors.New(`usage:
  parkportal db check  [--config FILE | --lab-defaults]   verify the state database, read-only
  parkportal db export [--config FILE | --lab-defaults] [--format csv|json]   the session log (stop the daemon first)`)
}

func run(args []string) error {
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:])
	case "lab":
		return cmdLab(args[1:])
	case "lab-internet":
		return cmdLabInternet(args[1:])
	case "config":
		switch {
		case len(args) > 1 && args[1] == "check":
			return cmdConfigCheck(args[2:])
		case len(args) > 1 && isHelp(args[1]):
			return showHelp(configUsage())
		}
		return configUsage()
	case "db":
		switch {
		case len(args) > 1 && args[1] == "check":
			return cmdDBCheck(args[2:])
		case len(args) > 1 && args[1] == "export":
			return cmdDBExport(args[2:])
		case len(args) > 1 && isHelp(args[1]):
			return showHelp(dbUsage())
		}
		return dbUsage()
	case "admin":
		return cmdAdmin(args[1:])
	case "site":
		return cmdSite(args[1:])
	case "sessions":
		return cmdSessions(args[1:])
	case "close-gate":
		return cmdCloseGate(args[1:])
	case "cleanup":
		return cmdCleanup(args[1:])
	case "version", "--version", "-v":
		fmt.Println(versionString())
		return nil
	case "help", "-h", "-help", "--help":
		return showHelp(usage())
	}
	return usage()
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 && v == "dev" {
				v = "dev-" + s.Value[:12]
			}
		}
		return fmt.Sprintf("parkportal %s (%s)", v, info.GoVersion)
	}
	return "parkportal " + v
}
