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
	if len(os.Args) > 1 && presized[os.Args[1]] {
		presizeStack(0)
	}
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return // --help printed what was asked
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parkportal:", err)
		os.Exit(1)
	}
}

// presized are the commands whose main goroutine's stack presizeStack
// sets: those that read the config file, the store or the admin API.
var presized = map[string]bool{"config": true, "db": true, "admin": true, "site": true, "sessions": true}

// presizeStack gives the calling goroutine a 16 KiB stack at once, while
// it holds two frames. A goroutine starts with 2 KiB and doubles its
// stack when a call does not fit; each doubling copies the stack and
// looks up every frame on it in the binary's function tables, which
// the kernel maps 64 KiB around each read. Left to grow on its own, a
// CLI call's main goroutine doubled deep in the config, JSON and bbolt
// code, mapping tables nothing else reads: about 0.4 MiB of a 386
// call's peak (issue 14: every CLI call <= 8 MiB on a 32-bit router).
// 16 KiB is what these commands reach at their deepest (an offline `site
// get`, decoding JSON in a bbolt transaction). n is 0: the frame is
// never written, only the stack's size changes.
//
//go:noinline
func presizeStack(n int) byte {
	if n > 0 {
		var b [12 << 10]byte
		b[n%len(b)] = byte(n)
		return b[n*7%len(b)]
	}
	return 0
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
