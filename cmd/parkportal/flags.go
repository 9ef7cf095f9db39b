package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/settings"
)

// defaultConfigPath is where OpenWrt keeps the config; commands read it
// when no --config is given, if it exists.
var defaultConfigPath = "/etc/config/parkportal"

// helpOut is where --help prints (stdout; tests swap it).
var helpOut io.Writer = os.Stdout

// flags are one subcommand's flags and its usage line.
type flags struct {
	*flag.FlagSet
	synopsis string // after "parkportal ", as --help prints it
}

func newFlags(name, synopsis string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse prints the usage itself, to the right stream
	fs.Usage = func() {}
	return &flags{FlagSet: fs, synopsis: synopsis}
}

// parse parses args. --help prints the subcommand's usage and its own
// flags to stdout and returns flag.ErrHelp, which main treats as
// success; a bad flag prints them to stderr and returns the error.
func (f *flags) parse(args []string) error {
	err := f.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.usage(helpOut)
		return flag.ErrHelp
	case err != nil:
		f.usage(os.Stderr)
		return err
	}
	return nil
}

func (f *flags) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: parkportal %s\n", f.synopsis)
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "flags:")
		f.SetOutput(w)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// showHelp prints a command group's usage to stdout and returns
// flag.ErrHelp.
func showHelp(usage error) error {
	fmt.Fprintln(helpOut, usage.Error())
	return flag.ErrHelp
}

// loadConfig adds --config and --lab-defaults to f, parses args and
// loads the config. Without --config it reads /etc/config/parkportal if
// it exists; it never falls back to the lab's embedded defaults by
// itself (a real gateway would then run a lab park on interfaces and a
// database path that are not its own): only --lab-defaults does that.
func loadConfig(f *flags, args []string) (*config.Config, error) {
	path := f.String("config", "", "config file (UCI syntax); default "+defaultConfigPath+" if it exists")
	lab := f.Bool("lab-defaults", false, "use the lab's embedded config (the virtual park of parkportal lab) instead of a file; never on a real gateway")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	var cfg *config.Config
	var err error
	where := *path
	switch {
	case *lab && *path != "":
		return nil, errors.New("--config and --lab-defaults: give one, not both")
	case *lab:
		where = "lab defaults"
		cfg, err = config.Parse(config.LabDefault)
	case *path != "":
		cfg, err = config.Load(*path)
	default:
		if _, serr := os.Stat(defaultConfigPath); serr != nil {
			return nil, fmt.Errorf("no config file: give --config FILE (%s, OpenWrt's, does not exist here), or --lab-defaults for the lab's virtual park (never on a real gateway)", defaultConfigPath)
		}
		where = defaultConfigPath
		cfg, err = config.Load(defaultConfigPath)
	}
	if err == nil {
		err = checkSite(cfg, where)
	}
	if err != nil {
		return nil, &fileError{path: where, err: err}
	}
	return cfg, nil
}

// fileError is a config that did not load or validate (as opposed to a
// wrong flag): close-gate can then stand in with the gate serve last
// built.
type fileError struct {
	path string // the file, or "lab defaults"
	err  error
}

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// checkSite checks the config file's site section with the site policy's
// one validator, which the console uses too: a file the console would
// refuse (a visitor's rate above the uplink, say) is refused by every
// command, with the options named.
func checkSite(cfg *config.Config, where string) error {
	fe := settings.FromFile(cfg).Validate()
	if fe == nil {
		return nil
	}
	var errs []error
	for _, field := range fe.Fields() {
		errs = append(errs, fmt.Errorf("%s: %s", settings.FileOptionOf(field), fe[field].In("en")))
	}
	return fmt.Errorf("config %s: %w", where, errors.Join(errs...))
}
