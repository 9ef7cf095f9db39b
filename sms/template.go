package sms

import (
	"strconv"
	"strings"
	"unicode/utf16"
)

// DefaultTemplates holds the PIN message per language. Each must fit one
// SMS segment with a site name of up to 15 characters, a 6-digit PIN and
// a 3-digit minute count, because a split message costs double and its
// parts can arrive out of order. The PIN comes first so it shows in the
// phone's notification preview and for one-time-code autofill.
//
// Arabic forces UCS-2 (70 units per segment): the Arabic text below is 69
// units with "حديقة أم السنيم" and 120 minutes. English stays within the
// GSM-7 alphabet (160 septets) as long as the site name does.
var DefaultTemplates = map[string]string{
	"ar": "رمز الدخول {pin} لإنترنت {site}، صالح {minutes} دقيقة. لا تشاركه.",
	"en": "Your code is {pin} for {site} free Wi-Fi. Valid {minutes} min. Do not share it.",
}

// Render fills {pin}, {minutes} and {site} in tmpl in one pass, so a site
// name that happens to contain "{pin}" is not expanded again.
func Render(tmpl string, pin string, minutes int, site string) string {
	return strings.NewReplacer(
		"{pin}", pin,
		"{minutes}", strconv.Itoa(minutes),
		"{site}", site,
	).Replace(tmpl)
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

// Segments returns how many SMS segments text needs, 0 for "".
//
// Text made only of GSM-7 characters travels in 7-bit septets: 160 in a
// single message, 153 per part of a concatenated one (the user data header
// takes 7); extension characters take two septets and are never split
// between parts. Anything else forces UCS-2: 70 UTF-16 units alone, 67 per
// part, and a surrogate pair (emoji) is never split either.
func Segments(text string) int {
	if text == "" {
		return 0
	}
	costs := make([]int, 0, len(text))
	gsm := true
	for _, r := range text {
		c, ok := gsm7Cost[r]
		if !ok {
			gsm = false
			break
		}
		costs = append(costs, c)
	}
	if gsm {
		return countSegments(costs, 160, 153)
	}
	costs = costs[:0]
	for _, r := range text {
		costs = append(costs, utf16.RuneLen(r))
	}
	return countSegments(costs, 70, 67)
}

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
