package admin

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/settings"
)

// wantsText reports whether a request prefers text/plain to JSON, as
// `parkportal sessions list` asks (Accept: text/plain): the daemon
// renders the table the CLI prints, so that a staff call on a router
// does not load a JSON decoder and the formatting code into a process of
// its own (issue 14). Each type's quality is that of the most specific
// range naming it (RFC 9110, 12.5.1); JSON wins a tie, so a client that
// accepts anything, or names no preference, gets JSON.
func wantsText(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return false
	}
	text, json := acceptQuality(accept, "text", "plain"), acceptQuality(accept, "application", "json")
	return text > json
}

// acceptQuality is the quality (0-1) an Accept header gives type/sub.
func acceptQuality(accept, typ, sub string) float64 {
	q, specificity := 0.0, -1
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		t, s, _ := strings.Cut(mt, "/")
		var spec int
		switch {
		case t == typ && s == sub:
			spec = 2
		case t == typ && s == "*":
			spec = 1
		case t == "*" && s == "*":
			spec = 0
		default:
			continue
		}
		if spec <= specificity {
			continue
		}
		specificity, q = spec, 1
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
			} else {
				q = 0 // a malformed weight accepts nothing
			}
		}
	}
	return q
}

// writeSessionsTable writes sessions as the aligned table staff read in a
// terminal: one line per session, device names made terminalSafe.
func writeSessionsTable(w io.Writer, list []SessionView) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPHONE\tMAC\tIP\tDEVICE\tLEFT\tRATE DOWN/UP\tBYTES DOWN/UP")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%d/%d\n", s.ID, s.Phone, s.MAC, s.IP, terminalSafe(s.Hostname, 24),
			settings.Duration(time.Duration(s.SecondsLeft)*time.Second), config.FormatRate(s.RateDown), config.FormatRate(s.RateUp), s.BytesDown, s.BytesUp)
	}
	return tw.Flush()
}

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
