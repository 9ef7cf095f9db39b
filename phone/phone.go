// Package phone turns what a visitor typed into an E.164 number and decides
// whether the site accepts it.
//
// Numbers are read the way github.com/nyaruka/phonenumbers reads them
// (parse.go is a port of the steps Normalize needs), from a table of
// libphonenumber's metadata generated into metadata.go: the library itself
// would add about 4.4 MiB to the router binary. The tests hold the port
// to the library's answers.
package phone

//go:generate go run ./internal/gen -o metadata.go

import (
	"errors"
	"strings"
	"unicode"
)

// ErrMalformed means the input is not a phone number at all.
var ErrMalformed = errors.New("not a valid phone number")

// ErrNotAllowed means the number is valid but the site does not send SMS to it.
var ErrNotAllowed = errors.New("number not accepted at this site")

// maxInput bounds what we hand to the parser; no real number is longer.
const maxInput = 40

// Normalize parses input as a number dialled in region (ISO 3166 code, e.g.
// "QA"), accepting Arabic-Indic and Eastern Arabic-Indic digits, spaces,
// dashes and the 00 international prefix, and returns it in E.164 form.
//
// allowed lists E.164 prefixes the site accepts ("+9743", "+9745", ...);
// a nil or empty list accepts every valid mobile number.
func Normalize(input, region string, allowed []string) (string, error) {
	s := foldDigits(strings.TrimSpace(input))
	if s == "" || len(s) > maxInput {
		return "", ErrMalformed
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	num, err := parse(s, region)
	if err != nil {
		return "", ErrMalformed
	}
	switch kindOf(&num) {
	case kindUnknown:
		return "", ErrMalformed
	case kindOther:
		return "", ErrNotAllowed
	}
	e164 := formatE164(&num)
	if len(allowed) == 0 {
		return e164, nil
	}
	for _, p := range allowed {
		if strings.HasPrefix(e164, p) {
			return e164, nil
		}
	}
	return "", ErrNotAllowed
}

// foldDigits maps every Unicode decimal digit (Arabic-Indic ٠-٩, Persian ۰-۹,
// full-width...) to ASCII and drops the separators people type.
func foldDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r == '+':
			b.WriteRune(r)
		case unicode.IsDigit(r):
			if d := digitValue(r); d >= 0 {
				b.WriteByte(byte('0' + d))
			} else {
				b.WriteRune(r)
			}
		case r == ' ', r == '-', r == '(', r == ')', r == '.', r == '\u00a0', unicode.Is(unicode.Bidi_Control, r):
			// separators and bidi marks pasted from messages
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// digitValue returns the value of a Unicode decimal digit, or -1.
func digitValue(r rune) int {
	// Decimal digits come in contiguous runs of ten starting at a zero.
	for _, zero := range []rune{0x0660, 0x06F0, 0x07C0, 0x0966, 0xFF10} {
		if r >= zero && r < zero+10 {
			return int(r - zero)
		}
	}
	return -1
}
