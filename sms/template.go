package sms

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/parkwifi/parkportal/i18n"
)

// DefaultTemplates holds the PIN message per language. Each must fit one
// SMS segment with a site name of up to 15 characters, a 6-digit PIN and
// any PIN lifetime staff may set (30 s to 1 h), because a split message
// costs double and its parts can arrive out of order. The PIN comes
// first so it shows in the phone's notification preview and for
// one-time-code autofill.
//
// Arabic forces UCS-2 (70 units per segment): the Arabic text below is at
// most 64 units with "حديقة أم السنيم", its longest validity being «دقيقة
// واحدة». English stays within the GSM-7 alphabet (160 septets) as long
// as the site name does.
var DefaultTemplates = map[string]string{
	"ar": "رمزك {pin} لإنترنت {site}، صالح {validity}. لا تشاركه.",
	"en": "Your code is {pin} for {site} free Wi-Fi. Valid for {validity}. Do not share it.",
}

// LegacyTemplates are earlier defaults, worded without plurals («صالح 5
// دقيقة», "Valid 5 min"). A site still on one of them never chose its
// text: it gets the current default (see Upgrade).
var LegacyTemplates = map[string][]string{
	"ar": {"رمز الدخول {pin} لإنترنت {site}، صالح {minutes} دقيقة. لا تشاركه."},
	"en": {"Your code is {pin} for {site} free Wi-Fi. Valid {minutes} min. Do not share it."},
}

// Upgrade returns the current default for a template that is an earlier
// default in lang, and tmpl itself otherwise.
func Upgrade(lang, tmpl string) string {
	for _, old := range LegacyTemplates[lang] {
		if tmpl == old {
			return DefaultTemplates[lang]
		}
	}
	return tmpl
}

// Render fills the placeholders of a PIN message in one pass, so a site
// name that happens to contain "{pin}" is not expanded again:
//
//	{pin}       the PIN
//	{site}      the park's name in the message's language
//	{validity}  how long the PIN is valid, worded in lang with the right
//	            plural: «5 دقائق», «دقيقتين», "1 minute", "30 seconds"
//	{minutes}   the same as a bare number of minutes, rounded up (for
//	            texts written before {validity}: "{minutes} min")
func Render(tmpl, pin string, ttl time.Duration, lang, site string) string {
	return strings.NewReplacer(
		"{pin}", pin,
		"{minutes}", strconv.Itoa(int((ttl+time.Minute-1)/time.Minute)),
		"{validity}", Validity(lang, ttl),
		"{site}", site,
	).Replace(tmpl)
}

// Validity words a PIN's lifetime for the message: seconds under a
// minute, whole minutes (rounded up) above, in the accusative Arabic uses
// after «صالح» («صالح دقيقتين»).
func Validity(lang string, ttl time.Duration) string {
	if ttl >= time.Minute {
		ttl = (ttl + time.Minute - 1) / time.Minute * time.Minute
	}
	return i18n.Duration(lang, ttl, i18n.Accusative)
}

// GSM 03.38 default alphabet and its extension table (characters sent as
// ESC + char, two septets). ESC itself is left out: it is not text.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Ext = "\f^{}\\[]~|€"
)

var gsm7Cost = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsm7Basic {
		m[r] = 1
	}
	for _, r := range gsm7Ext {
		m[r] = 2
	}
	return m
}()

// Measure is what a text costs as an SMS: its encoding, its length in
// that encoding's units and how many segments it travels in.
type Measure struct {
	// UCS2 is true when a character outside the GSM-7 alphabet (and its
	// extension table) forces UCS-2: any Arabic letter, an emoji, "ç".
	UCS2 bool
	// NotGSM is the first such character (0 when UCS2 is false).
	NotGSM rune
	// Units is the length in septets (GSM-7, extension characters
	// counting two) or UTF-16 units (UCS-2).
	Units int
	// Segments is how many SMS the text travels in; 0 for "".
	Segments int
	// Capacity is how many units fit in that many segments: 160 or 70
	// for one, 153 or 67 per segment of a longer message.
	Capacity int
}

// Encoding names the encoding: "GSM-7" or "UCS-2".
func (m Measure) Encoding() string {
	if m.UCS2 {
		return "UCS-2"
	}
	return "GSM-7"
}

// MeasureText measures text as an SMS.
//
// Text made only of GSM-7 characters travels in 7-bit septets: 160 in a
// single message, 153 per part of a concatenated one (the user data header
// takes 7); extension characters take two septets and are never split
// between parts. Anything else forces UCS-2: 70 UTF-16 units alone, 67 per
// part, and a surrogate pair (emoji) is never split either.
func MeasureText(text string) Measure {
	var m Measure
	if text == "" {
		return m
	}
	costs := make([]int, 0, len(text))
	for _, r := range text {
		c, ok := gsm7Cost[r]
		if !ok {
			m.UCS2, m.NotGSM = true, r
			break
		}
		costs = append(costs, c)
	}
	single, multi := 160, 153
	if m.UCS2 {
		single, multi = 70, 67
		costs = costs[:0]
		for _, r := range text {
			costs = append(costs, utf16.RuneLen(r))
		}
	}
	for _, c := range costs {
		m.Units += c
	}
	m.Segments = countSegments(costs, single, multi)
	m.Capacity = single
	if m.Segments > 1 {
		m.Capacity = multi * m.Segments
	}
	return m
}

// Segments returns how many SMS segments text needs, 0 for "" (see
// MeasureText).
func Segments(text string) int { return MeasureText(text).Segments }

// countSegments packs characters of the given costs into segments of
// single capacity if they all fit, else of multi capacity without
// splitting a character.
func countSegments(costs []int, single, multi int) int {
	total := 0
	for _, c := range costs {
		total += c
	}
	if total <= single {
		return 1
	}
	n, used := 1, 0
	for _, c := range costs {
		if used+c > multi {
			n++
			used = 0
		}
		used += c
	}
	return n
}
