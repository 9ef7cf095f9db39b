package settings

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parkwifi/parkportal/config"
)

// Duration is a time.Duration that reads and writes as text ("4h",
// "20m", "90s") in JSON, so a profile file is readable by the staff who
// edit it. Bare numbers are read as seconds, as in the config file.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders d without zero units: 4h, 20m, 1h30m, 45s.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "4h", "300" or a bare number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err := json.Unmarshal(b, &n); err != nil || n < 0 || n > 1e9 {
			return fmt.Errorf("want a duration like \"20m\" or a number of seconds")
		}
		*d = Duration(time.Duration(n * float64(time.Second)))
		return nil
	}
	v, err := config.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a duration like \"20m\" or \"4h\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads a duration as the console form and the CLI take
// it; its error is a FieldError, for the console to show per field.
func ParseDuration(s string) (Duration, error) {
	v, err := config.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fieldError("duration_syntax", strconv.Quote(s))
	}
	return Duration(v), nil
}

// ParseCount reads a whole number from a form; its error is a
// FieldError.
func ParseCount(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fieldError("whole_number")
	}
	return n, nil
}

// Rate is a bit rate in bit/s that reads and writes tc-style in JSON
// ("8mbit", "512kbit"); bare numbers are bit/s.
type Rate uint64

// String renders r the way the config file writes rates.
func (r Rate) String() string { return config.FormatRate(uint64(r)) }

// MarshalJSON writes r as a rate string.
func (r Rate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON reads "8mbit" or a bare number of bit/s.
func (r *Rate) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err := json.Unmarshal(b, &n); err != nil || !(n >= 0) || n > 1e11 {
			return fmt.Errorf("want a rate like \"8mbit\" or a number of bit/s")
		}
		*r = Rate(n)
		return nil
	}
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// ParseRate reads a rate as the console form and the CLI take it; its
// error is a FieldError, for the console to show per field.
func ParseRate(s string) (Rate, error) {
	v, err := config.ParseRate(s)
	if err != nil {
		return 0, fieldError("rate_syntax", strconv.Quote(s))
	}
	return Rate(v), nil
}
