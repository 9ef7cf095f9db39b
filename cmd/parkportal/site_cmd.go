package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/parkwifi/parkportal/settings"
)

// siteSynopses are each site subcommand's usage line.
var siteSynopses = map[string]string{
	"get":    "site get    [--config FILE]   print the site policy as JSON",
	"set":    "site set    [--config FILE] FIELD=VALUE ...   e.g. rate_down=4mbit idle_timeout=30m allowed_prefixes=+9743,+9745",
	"export": "site export [--config FILE] [FILE]   write a site profile (stdout without FILE)",
	"import": "site import [--config FILE] [--keep-names] FILE   apply a profile exported on another gateway",
}

func siteUsage() error {
	return errors.New(`usage:
  parkportal site get    [--config FILE]                      print the site policy as JSON
  parkportal site set    [--config FILE] FIELD=VALUE ...      e.g. rate_down=4mbit idle_timeout=30m allowed_prefixes=+9743,+9745
  parkportal site export [--config FILE] [FILE]               write a site profile (stdout without FILE)
  parkportal site import [--config FILE] [--keep-names] FILE  apply a profile exported on another gateway
Changes are validated, recorded in the audit log as local-root and applied live when the daemon runs`)
}

// cmdSite is `parkportal site ...`: the site policy.
func cmdSite(args []string) error {
	if len(args) == 0 {
		return siteUsage()
	}
	sub := args[0]
	if isHelp(sub) {
		return showHelp(siteUsage())
	}
	synopsis, ok := siteSynopses[sub]
	if !ok {
		return siteUsage()
	}
	fs := newFlags("site "+sub, synopsis)
	keepNames := new(bool)
	if sub == "import" {
		keepNames = fs.Bool("keep-names", false, "keep this park's Arabic and English names")
	}
	c, _, rest, err := openAPI(fs, args[1:])
	if err != nil {
		return err
	}
	defer c.close()
	switch {
	case sub == "get" && len(rest) == 0:
		return c.do("GET", "/api/v1/site", nil, os.Stdout)
	case sub == "set" && len(rest) > 0:
		patch, err := sitePatch(rest)
		if err != nil {
			return err
		}
		if err := c.do("PATCH", "/api/v1/site", bytes.NewReader(patch), nil); err != nil {
			return err
		}
		fmt.Println("site settings saved")
		return nil
	case sub == "export" && len(rest) <= 1:
		var buf bytes.Buffer
		if err := c.do("GET", "/api/v1/site/export", nil, &buf); err != nil {
			return err
		}
		if len(rest) == 0 {
			_, err := os.Stdout.Write(buf.Bytes())
			return err
		}
		return os.WriteFile(rest[0], buf.Bytes(), 0o644)
	case sub == "import" && len(rest) == 1:
		f, err := os.Open(rest[0])
		if err != nil {
			return fmt.Errorf("reading profile: %w", err)
		}
		defer f.Close()
		q := ""
		if *keepNames {
			q = "?keep_names=1"
		}
		if err := c.do("POST", "/api/v1/site/import"+q, f, nil); err != nil {
			return err
		}
		fmt.Printf("profile %s applied\n", rest[0])
		return nil
	}
	return siteUsage()
}

// listFields are set from comma-separated values on the command line.
var listFields = map[string]bool{"walled_garden": true, "allowed_prefixes": true, "radius.servers": true}

// sitePatch turns FIELD=VALUE arguments into a JSON patch. Values are
// JSON when they parse as JSON (numbers, true/false), otherwise strings;
// "radius.x" and "sms_templates.x" address nested fields.
func sitePatch(kvs []string) ([]byte, error) {
	patch := map[string]any{}
	nested := map[string]map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("want FIELD=VALUE, got %q", kv)
		}
		var val any
		switch {
		case listFields[k]:
			list := []string{}
			for _, x := range strings.Split(v, ",") {
				if x = strings.TrimSpace(x); x != "" {
					list = append(list, x)
				}
			}
			val = list
		case json.Valid([]byte(v)) && !strings.HasPrefix(v, `"`):
			val = json.RawMessage(v)
		default:
			val = v
		}
		if parent, child, ok := strings.Cut(k, "."); ok {
			if nested[parent] == nil {
				nested[parent] = map[string]any{}
			}
			nested[parent][child] = val
			continue
		}
		patch[k] = val
	}
	for k, v := range nested {
		patch[k] = v
	}
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	// Check field names and value types here, so a typo is named before
	// anything is sent.
	if _, err := settings.Patch(settings.FromConfig(defaultSiteForCheck()), b); err != nil {
		return nil, err
	}
	return b, nil
}
