package phone

// This file is a port of the part of github.com/nyaruka/phonenumbers
// v1.8.1 (MIT License, see LICENSE.phonenumbers; itself a port of
// Google's libphonenumber) that Parse, IsValidNumber, GetNumberType and
// Format(E164) run, reading the generated table in metadata.go instead of
// the library's protobuf metadata. It keeps the library's steps, regular
// expressions and quirks on purpose: the differential test and fuzz
// target (differential_test.go) hold it to the library's answers, so a
// visitor's number is read exactly as before, and a difference found
// there is fixed here, not explained away. Names follow the library's
// functions so the two can be read side by side.

import (
	"errors"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

const (
	minLengthForNSN       = 2
	maxLengthForNSN       = 17
	maxLengthCountryCode  = 3
	maxInputStringLength  = 250
	regionCodeForNonGeo   = "001"
	unknownRegion         = "ZZ"
	plusSign              = '+'
	rfc3966ExtnPrefix     = ";ext="
	rfc3966Prefix         = "tel:"
	rfc3966PhoneContext   = ";phone-context="
	rfc3966IsdnSubaddress = ";isub="

	validPunctuation = "-x\u2010-\u2015\u2212\u30FC\uFF0D-\uFF0F " +
		"\u00A0\u00AD\u200B\u2060\u3000()\uFF08\uFF09\uFF3B\uFF3D." +
		"\\[\\]/~\u2053\u223C\uFF5E"
	digits     = "\\p{Nd}"
	validAlpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	plusChars  = "+\uFF0B"
	starSign   = "*"

	validPhoneNumber = digits + "{2}" + "|" +
		"[" + plusChars + "]*(?:[" + validPunctuation + starSign +
		"]*" + digits + "){3,}[" +
		validPunctuation + starSign + validAlpha + digits + "]*"

	possibleSeparatorsBetweenNumberAndExtLabel = "[ \u00A0\\t,]*"
	possibleCharsAfterExtLabel                 = "[:\\.\uFF0E]?[ \u00A0\\t,-]*"
	optionalExtnSuffix                         = "#?"
	explicitExtLabels                          = "(?:e?xt(?:ensi(?:o\u0301?|\u00F3))?n?|" +
		"\uFF45?\uFF58\uFF54\uFF4E?|\u0434\u043E\u0431|anexo)"
	ambiguousExtLabels                      = "(?:[x\uFF58#\uFF03~\uFF5E]|int|\uFF49\uFF4E\uFF54)"
	ambiguousSeparator                      = "[- ]+"
	possibleSeparatorsNumberExtLabelNoComma = "[ \u00A0\\t]*"
	autoDiallingAndExtLabelsFound           = "(?:,{2}|;)"

	extnPatternsForMatching = rfc3966ExtnPrefix + "(" + digits + "{1,20})" + "|" +
		possibleSeparatorsBetweenNumberAndExtLabel + explicitExtLabels +
		possibleCharsAfterExtLabel + "(" + digits + "{1,20})" + optionalExtnSuffix + "|" +
		possibleSeparatorsBetweenNumberAndExtLabel + ambiguousExtLabels +
		possibleCharsAfterExtLabel + "(" + digits + "{1,9})" + optionalExtnSuffix + "|" +
		ambiguousSeparator + "(" + digits + "{1,6})#"
	extnPatternsForParsing = extnPatternsForMatching + "|" +
		possibleSeparatorsNumberExtLabelNoComma + autoDiallingAndExtLabelsFound +
		possibleCharsAfterExtLabel + "(" + digits + "{1,15})" + optionalExtnSuffix + "|" +
		possibleSeparatorsNumberExtLabelNoComma + "(?:,)+" +
		possibleCharsAfterExtLabel + "(" + digits + "{1,9})" + optionalExtnSuffix

	rfc3966VisualSeparator    = "[\\-\\.\\(\\)]?"
	rfc3966PhoneDigit         = "(" + digits + "|" + rfc3966VisualSeparator + ")"
	rfc3966GlobalNumberDigits = "^\\" + string(plusSign) + rfc3966PhoneDigit + "*" + digits + rfc3966PhoneDigit + "*$"
	alphanum                  = validAlpha + digits
	rfc3966DomainLabel        = "[" + alphanum + "]+((\\-)*[" + alphanum + "])*"
	rfc3966TopLabel           = "[" + validAlpha + "]+((\\-)*[" + alphanum + "])*"
	rfc3966DomainName         = "^(" + rfc3966DomainLabel + "\\.)*" + rfc3966TopLabel + "\\.?$"
)

// syntax holds the library's fixed expressions, compiled on first use
// rather than at start: the CLI commands never parse a number.
type syntax struct {
	plusChars, validStartChar, secondNumberStart, unwantedEndChar *regexp.Regexp
	validAlphaPhone, validPhoneNumber, extn, capturingDigit       *regexp.Regexp
	globalNumberDigits, domainName                                *regexp.Regexp
}

var compiled = sync.OnceValue(func() *syntax {
	return &syntax{
		plusChars:         regexp.MustCompile("[" + plusChars + "]+"),
		validStartChar:    regexp.MustCompile("[" + plusChars + digits + "]"),
		secondNumberStart: regexp.MustCompile(`[\\/] *x`),
		// Java's class intersection (&&) is not RE2 syntax: Go reads
		// this as a far narrower pattern than upstream meant, and the
		// library ships it that way, so it is kept verbatim.
		unwantedEndChar:    regexp.MustCompile(`[[\P{N}&&\P{L}]&&[^#]]+$`),
		validAlphaPhone:    regexp.MustCompile("^(?:.*?[A-Za-z]){3}.*$"),
		validPhoneNumber:   regexp.MustCompile("(?i)^(" + validPhoneNumber + "(?:" + extnPatternsForParsing + ")?)$"),
		extn:               regexp.MustCompile("(?i)(?:" + extnPatternsForParsing + ")$"),
		capturingDigit:     regexp.MustCompile("(" + digits + ")"),
		globalNumberDigits: regexp.MustCompile(rfc3966GlobalNumberDigits),
		domainName:         regexp.MustCompile(rfc3966DomainName),
	}
})

// The per-region patterns are compiled when a number first needs them and
// kept, like the library's regexFor: a park reads its own region's over
// and over, and the whole table compiled is bounded.
var (
	regexMu    sync.RWMutex
	regexCache = map[string]*regexp.Regexp{}
)

func regexFor(pattern string) *regexp.Regexp {
	regexMu.RLock()
	re, ok := regexCache[pattern]
	regexMu.RUnlock()
	if ok {
		return re
	}
	re = regexp.MustCompile(pattern)
	regexMu.Lock()
	regexCache[pattern] = re
	regexMu.Unlock()
	return re
}

// The generated table's types (metadata.go).
type (
	callingCode struct {
		cc      int
		regions []string
	}
	region struct {
		id      string // ISO 3166 code, or "001" for a non-geographical entity
		cc      int
		idd     string // international prefix, a pattern
		npp     string // national prefix for parsing, a pattern
		nptr    string // national prefix transform rule
		leading string // leading digits that pick this region of a shared code
		same    bool   // same mobile and fixed-line pattern
		general desc
		fixed   desc
		mobile  desc
		other   []desc // premium rate, toll free, ... voicemail
	}
	desc struct {
		pattern      string
		lengths      []int8 // possible lengths; empty: those of the general description
		localLengths []int8
	}
)

var (
	errInvalidCountryCode = errors.New("invalid country code")
	errNotANumber         = errors.New("the phone number supplied is not a number")
	errTooShortNSN        = errors.New("the string supplied is too short to be a phone number")
	errTooShortAfterIDD   = errors.New("phone number had an IDD, but after this was not long enough to be a viable phone number")
	errNumTooLong         = errors.New("the string supplied is too long to be a phone number")
)

// number is the library's PhoneNumber, as far as E.164 needs it.
type number struct {
	cc           int
	national     uint64
	italianZero  bool
	leadingZeros int
}

// regionsFor returns the regions of a calling code, main region first.
func regionsFor(cc int) []string {
	i := sort.Search(len(callingCodes), func(i int) bool { return callingCodes[i].cc >= cc })
	if i < len(callingCodes) && callingCodes[i].cc == cc {
		return callingCodes[i].regions
	}
	return nil
}

// lookup finds a region's metadata by id and, for "001", calling code.
func lookup(id string, cc int) *region {
	i := sort.Search(len(regions), func(i int) bool {
		r := &regions[i]
		return r.id > id || r.id == id && r.cc >= cc
	})
	if i < len(regions) && regions[i].id == id && (id != regionCodeForNonGeo || regions[i].cc == cc) {
		return &regions[i]
	}
	return nil
}

// metadataForRegion is getMetadataForRegion: nil unless id is a region
// (not "001") some calling code lists.
func metadataForRegion(id string) *region {
	if id == "" || id == regionCodeForNonGeo {
		return nil
	}
	return lookup(id, 0)
}

func metadataForRegionOrCallingCode(cc int, id string) *region {
	if id == regionCodeForNonGeo {
		if regionsFor(cc) == nil {
			return nil
		}
		return lookup(id, cc)
	}
	return metadataForRegion(id)
}

func regionCodeForCountryCode(cc int) string {
	if r := regionsFor(cc); len(r) > 0 {
		return r[0]
	}
	return unknownRegion
}

func extractPossibleNumber(s string) string {
	x := compiled()
	loc := x.validStartChar.FindStringIndex(s)
	if loc == nil {
		return ""
	}
	s = s[loc[0]:]
	if i := x.unwantedEndChar.FindStringIndex(s); len(i) > 0 {
		s = s[:i[0]]
	}
	if i := x.secondNumberStart.FindStringIndex(s); len(i) > 0 {
		s = s[:i[0]]
	}
	return s
}

func isViablePhoneNumber(s string) bool {
	if len(s) < minLengthForNSN {
		return false
	}
	return compiled().validPhoneNumber.MatchString(s)
}

// normalize converts letters to keypad digits when there are three or
// more of them, else keeps only the digits.
func normalize(s string) string {
	if compiled().validAlphaPhone.MatchString(s) {
		var b strings.Builder
		for _, c := range s {
			if d, ok := alphaPhoneMapping(unicode.ToUpper(c)); ok {
				b.WriteRune(d)
			}
		}
		return b.String()
	}
	return normalizeDigitsOnly(s)
}

// alphaPhoneMapping is the library's ALPHA_PHONE_MAPPINGS: ASCII digits
// and the E.161 keypad letters.
func alphaPhoneMapping(c rune) (rune, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c, true
	case c >= 'A' && c <= 'Z':
		return rune("22233344455566677778889999"[c-'A']), true
	}
	return 0, false
}

// normalizeDigitsOnly keeps every Unicode digit, turning the ASCII,
// Arabic-Indic, Eastern Arabic-Indic and full-width ones to ASCII; other
// scripts' digits stay as they are, as in the library.
func normalizeDigitsOnly(s string) string {
	var b strings.Builder
	for _, c := range s {
		if !unicode.IsDigit(c) {
			continue
		}
		switch {
		case c >= '\u0660' && c <= '\u0669':
			c = '0' + c - '\u0660'
		case c >= '\u06F0' && c <= '\u06F9':
			c = '0' + c - '\u06F0'
		case c >= '\uFF10' && c <= '\uFF19':
			c = '0' + c - '\uFF10'
		}
		b.WriteRune(c)
	}
	return b.String()
}

func isNumberMatchingDesc(national string, d *desc) bool {
	if len(d.lengths) > 0 {
		n := len(national)
		found := false
		for _, l := range d.lengths {
			if int(l) == n {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return regexFor("^(?:" + d.pattern + ")$").MatchString(national)
}

// numberKind is what Normalize needs of the library's PhoneNumberType.
type numberKind int

const (
	kindUnknown numberKind = iota // UNKNOWN: not a valid number
	kindMobile                    // MOBILE or FIXED_LINE_OR_MOBILE
	kindOther                     // valid, but fixed line, toll free, premium rate ...
)

// numberKindOf is getNumberTypeHelper.
func numberKindOf(national string, m *region) numberKind {
	if !isNumberMatchingDesc(national, &m.general) {
		return kindUnknown
	}
	for i := range m.other {
		if isNumberMatchingDesc(national, &m.other[i]) {
			return kindOther
		}
	}
	if isNumberMatchingDesc(national, &m.fixed) {
		if m.same || isNumberMatchingDesc(national, &m.mobile) {
			return kindMobile
		}
		return kindOther
	}
	if !m.same && isNumberMatchingDesc(national, &m.mobile) {
		return kindMobile
	}
	return kindUnknown
}

// kindOf is IsValidNumber and GetNumberType in one: the region the number
// belongs to, then its type there.
func kindOf(n *number) numberKind {
	id := regionCodeForNumber(n)
	m := metadataForRegionOrCallingCode(n.cc, id)
	if m == nil || id != regionCodeForNonGeo && n.cc != m.cc {
		return kindUnknown
	}
	return numberKindOf(nationalSignificantNumber(n), m)
}

func regionCodeForNumber(n *number) string {
	ids := regionsFor(n.cc)
	switch len(ids) {
	case 0:
		return ""
	case 1:
		return ids[0]
	}
	national := nationalSignificantNumber(n)
	for _, id := range ids {
		m := metadataForRegion(id)
		if m.leading != "" {
			if regexFor("^(?:" + m.leading + ")").MatchString(national) {
				return id
			}
		} else if numberKindOf(national, m) != kindUnknown {
			return id
		}
	}
	return ""
}

func nationalSignificantNumber(n *number) string {
	var b strings.Builder
	if n.italianZero && n.leadingZeros > 0 {
		b.WriteString(strings.Repeat("0", min(n.leadingZeros, maxLengthForNSN)))
	}
	b.WriteString(strconv.FormatUint(n.national, 10))
	return b.String()
}

// formatE164 is Format(n, E164).
func formatE164(n *number) string {
	return "+" + strconv.Itoa(n.cc) + nationalSignificantNumber(n)
}

// The library's ValidationResult, as far as parsing reads it.
type lengthResult int

const (
	isPossible lengthResult = iota
	isPossibleLocalOnly
	tooShort
	invalidLength
	tooLong
)

// testNumberLength is the library's for the UNKNOWN type: the general
// description's lengths.
func testNumberLength(national string, m *region) lengthResult {
	possible := m.general.lengths
	if possible[0] == -1 {
		return invalidLength
	}
	n := len(national)
	for _, l := range m.general.localLengths {
		if int(l) == n {
			return isPossibleLocalOnly
		}
	}
	switch {
	case int(possible[0]) == n:
		return isPossible
	case int(possible[0]) > n:
		return tooShort
	case int(possible[len(possible)-1]) < n:
		return tooLong
	}
	for _, l := range possible[1:] {
		if int(l) == n {
			return isPossible
		}
	}
	return invalidLength
}

func extractCountryCode(full string) (cc int, national string) {
	if len(full) == 0 || full[0] == '0' {
		return 0, ""
	}
	for i := 1; i <= maxLengthCountryCode && i <= len(full); i++ {
		c, _ := strconv.Atoi(full[:i])
		if regionsFor(c) != nil {
			return c, full[i:]
		}
	}
	return 0, ""
}

// Where maybeStripInternationalPrefixAndNormalize found the country code.
type ccSource int

const (
	fromNumberWithPlusSign ccSource = iota
	fromNumberWithIDD
	fromDefaultCountry
)

func parsePrefixAsIdd(idd *regexp.Regexp, s string) (string, bool) {
	loc := idd.FindStringIndex(s)
	if len(loc) == 0 || loc[0] != 0 {
		return s, false
	}
	end := loc[1]
	if find := compiled().capturingDigit.FindAllString(s[end:], -1); len(find) > 0 {
		if normalizeDigitsOnly(find[0]) == "0" {
			return s, false
		}
	}
	return s[end:], true
}

func maybeStripInternationalPrefixAndNormalize(s, possibleIddPrefix string) (string, ccSource) {
	if len(s) == 0 {
		return s, fromDefaultCountry
	}
	if loc := compiled().plusChars.FindStringIndex(s); len(loc) > 0 && loc[0] == 0 {
		return normalize(s[loc[1]:]), fromNumberWithPlusSign
	}
	idd := regexFor(possibleIddPrefix)
	s = normalize(s)
	if rest, ok := parsePrefixAsIdd(idd, s); ok {
		return rest, fromNumberWithIDD
	}
	return s, fromDefaultCountry
}

// maybeStripNationalPrefixAndCarrierCode returns s without its national
// prefix (transformed if the region says so), or s unchanged. The carrier
// code the library also extracts is not needed for E.164.
func maybeStripNationalPrefixAndCarrierCode(s string, m *region) string {
	if len(s) == 0 || len(m.npp) == 0 {
		return s
	}
	prefix := regexFor("^(?:" + m.npp + ")")
	if !prefix.MatchString(s) {
		return s
	}
	rule := regexFor("^(?:" + m.general.pattern + ")$")
	viableOriginal := rule.MatchString(s)
	groups := prefix.FindStringSubmatchIndex(s)
	numGroups := len(groups)/2 - 1
	if len(m.nptr) == 0 || groups[numGroups*2] < 0 {
		if viableOriginal && !rule.MatchString(s[groups[1]:]) {
			return s
		}
		return s[groups[1]:]
	}
	transformed := prefix.ReplaceAllString(s, m.nptr)
	if viableOriginal && !rule.MatchString(transformed) {
		return s
	}
	return transformed
}

// maybeExtractCountryCode returns the calling code found (0: none) and
// the rest of the number, if any.
func maybeExtractCountryCode(s string, def *region) (int, string, error) {
	if len(s) == 0 {
		return 0, "", nil
	}
	idd := "NonMatch" // never matches a normalised number
	if def != nil {
		idd = def.idd
	}
	full, source := maybeStripInternationalPrefixAndNormalize(s, idd)
	if source != fromDefaultCountry {
		if len(full) <= minLengthForNSN {
			return 0, "", errTooShortAfterIDD
		}
		if cc, national := extractCountryCode(full); cc != 0 {
			return cc, national, nil
		}
		return 0, "", errInvalidCountryCode
	}
	if def != nil {
		ccs := strconv.Itoa(def.cc)
		if strings.HasPrefix(full, ccs) {
			potential := maybeStripNationalPrefixAndCarrierCode(full[len(ccs):], def)
			valid := regexFor("^(?:" + def.general.pattern + ")$")
			if !valid.MatchString(full) && valid.MatchString(potential) || testNumberLength(full, def) == tooLong {
				return def.cc, potential, nil
			}
		}
	}
	return 0, "", nil
}

func extractPhoneContext(s string, index int) string {
	if index == -1 {
		return ""
	}
	start := index + len(rfc3966PhoneContext)
	if start >= len(s) {
		return ""
	}
	if end := strings.IndexRune(s[start:], ';'); end != -1 {
		return s[start : start+end]
	}
	return s[start:]
}

func isPhoneContextValid(ctx string) bool {
	if len(ctx) == 0 {
		return false
	}
	x := compiled()
	return x.globalNumberDigits.MatchString(ctx) || x.domainName.MatchString(ctx)
}

func buildNationalNumberForParsing(s string) (string, error) {
	index := strings.Index(s, rfc3966PhoneContext)
	ctx := extractPhoneContext(s, index)
	if index >= 0 && !isPhoneContextValid(ctx) {
		return "", errNotANumber
	}
	var national string
	if index > 0 {
		if ctx[0] == plusSign {
			national = ctx
		}
		start := 0
		if p := strings.Index(s, rfc3966Prefix); p >= 0 && p < index {
			start = p + len(rfc3966Prefix)
		}
		national += s[start:index]
	} else {
		national = extractPossibleNumber(s)
	}
	if i := strings.Index(national, rfc3966IsdnSubaddress); i > 0 {
		national = national[:i]
	}
	return national, nil
}

// maybeStripExtension removes an extension ("ext. 12", "x12", ";ext=12")
// from the end of s, if what comes before it is a viable number.
func maybeStripExtension(s string) string {
	x := compiled()
	loc := x.extn.FindStringIndex(s)
	if len(loc) > 0 && isViablePhoneNumber(s[:loc[0]]) {
		for _, ext := range x.extn.FindStringSubmatch(s)[1:] {
			if len(ext) > 0 {
				return s[:loc[0]]
			}
		}
	}
	return s
}

// parse is the library's Parse (parseHelper with checkRegion and without
// the raw input).
func parse(input, defaultRegion string) (number, error) {
	var n number
	if len(input) == 0 {
		return n, errNotANumber
	} else if len(input) > maxInputStringLength {
		return n, errNumTooLong
	}
	national, err := buildNationalNumberForParsing(input)
	if err != nil {
		return n, err
	}
	if !isViablePhoneNumber(national) {
		return n, errNotANumber
	}
	def := metadataForRegion(defaultRegion)
	if def == nil && (len(national) == 0 || !compiled().plusChars.MatchString(national)) {
		return n, errInvalidCountryCode
	}
	national = maybeStripExtension(national)

	cc, normalized, err := maybeExtractCountryCode(national, def)
	if err != nil {
		loc := compiled().plusChars.FindStringIndex(national)
		if err != errInvalidCountryCode || len(loc) == 0 {
			return n, err
		}
		// A plus that is no country code's: try again without it.
		cc, normalized, err = maybeExtractCountryCode(national[loc[1]:], def)
		if err != nil {
			return n, err
		} else if cc == 0 {
			return n, errInvalidCountryCode
		}
	}
	m := def
	if cc != 0 {
		if main := regionCodeForCountryCode(cc); main != defaultRegion {
			m = metadataForRegionOrCallingCode(cc, main)
		}
	} else {
		normalized += normalize(national)
		if len(defaultRegion) != 0 && def != nil {
			cc = def.cc
		}
	}
	n.cc = cc
	if len(normalized) < minLengthForNSN {
		return n, errTooShortNSN
	}
	if m != nil {
		potential := maybeStripNationalPrefixAndCarrierCode(normalized, m)
		switch testNumberLength(potential, m) {
		case tooShort, isPossibleLocalOnly, invalidLength:
		default:
			normalized = potential
		}
	}
	if len(normalized) < minLengthForNSN {
		return n, errTooShortNSN
	}
	if len(normalized) > maxLengthForNSN {
		return n, errNumTooLong
	}
	if len(normalized) >= 2 && normalized[0] == '0' {
		n.italianZero = true
		zeros := 1
		for zeros < len(normalized)-1 && normalized[zeros] == '0' {
			zeros++
		}
		n.leadingZeros = zeros
	}
	n.national, _ = strconv.ParseUint(normalized, 10, 64)
	return n, nil
}
