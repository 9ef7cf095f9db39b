package i18n

import (
	"strings"
	"time"
)

// Case is the grammatical case a counted noun stands in. English ignores
// it; in Arabic it changes the dual of every noun (دقيقتان → دقيقتين)
// and the accusative of a masculine one (يوم واحد → يومًا واحدًا), so a
// sentence asks for the case its grammar needs.
type Case uint8

const (
	// Nominative: a label's value or a subject. «الوقت المتبقي: ساعتان»
	Nominative Case = iota
	// Accusative: an adverb of time after a verb or adjective.
	// «صالح دقيقتين», «نحتفظ بها يومًا واحدًا»
	Accusative
	// Genitive: after a preposition or in an idafa. «بعد دقيقتين»
	Genitive
)

// Unit is a counted noun with its forms in both languages and, in
// Arabic, in each case.
type Unit struct {
	ar [3]Forms // by Case
	en Forms
}

// Count returns n of u in lang and case: «3 دقائق», "3 minutes".
func (u Unit) Count(lang string, n int, c Case) string {
	if lang == AR {
		return u.ar[c].Format(AR, n)
	}
	return u.en.Format(lang, n)
}

// arUnit builds an Arabic noun's three cases from its nominative forms,
// its oblique (accusative and genitive) dual and its accusative "one"
// (which differs from the nominative for masculine nouns only).
func arUnit(nom Forms, obliqueTwo, accusativeOne string) [3]Forms {
	acc, gen := nom, nom
	acc[Two], gen[Two] = obliqueTwo, obliqueTwo
	acc[One] = accusativeOne
	return [3]Forms{Nominative: nom, Accusative: acc, Genitive: gen}
}

// The units of time a visitor or staff member is told. Arabic forms
// follow CLDR's unit patterns (one and two without the numeral; many
// with the accusative singular: «11 يومًا»).
var (
	Seconds = Unit{
		ar: arUnit(Forms{Zero: "{n} ثانية", One: "ثانية واحدة", Two: "ثانيتان", Few: "{n} ثوانٍ", Many: "{n} ثانية", Other: "{n} ثانية"},
			"ثانيتين", "ثانية واحدة"),
		en: Forms{One: "1 second", Other: "{n} seconds"},
	}
	Minutes = Unit{
		ar: arUnit(Forms{Zero: "{n} دقيقة", One: "دقيقة واحدة", Two: "دقيقتان", Few: "{n} دقائق", Many: "{n} دقيقة", Other: "{n} دقيقة"},
			"دقيقتين", "دقيقة واحدة"),
		en: Forms{One: "1 minute", Other: "{n} minutes"},
	}
	Hours = Unit{
		ar: arUnit(Forms{Zero: "{n} ساعة", One: "ساعة واحدة", Two: "ساعتان", Few: "{n} ساعات", Many: "{n} ساعة", Other: "{n} ساعة"},
			"ساعتين", "ساعة واحدة"),
		en: Forms{One: "1 hour", Other: "{n} hours"},
	}
	Days = Unit{
		ar: arUnit(Forms{Zero: "{n} يوم", One: "يوم واحد", Two: "يومان", Few: "{n} أيام", Many: "{n} يومًا", Other: "{n} يوم"},
			"يومين", "يومًا واحدًا"),
		en: Forms{One: "1 day", Other: "{n} days"},
	}
)

// Duration words d in days, hours and minutes, leaving out units that
// are zero: «ساعتان و5 دقائق», "2 hours and 5 minutes". Seconds are
// dropped (callers round first: see Remaining and Wait); a duration under
// a minute is worded in seconds. Zero or less is «0 دقيقة», "0 minutes".
func Duration(lang string, d time.Duration, c Case) string {
	if d < time.Minute {
		if d <= 0 {
			return Minutes.Count(lang, 0, c)
		}
		return Seconds.Count(lang, int(d/time.Second), c)
	}
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	mins := int(d % time.Hour / time.Minute)
	var parts []string
	if days > 0 {
		parts = append(parts, Days.Count(lang, days, c))
	}
	if hours > 0 {
		parts = append(parts, Hours.Count(lang, hours, c))
	}
	if mins > 0 {
		parts = append(parts, Minutes.Count(lang, mins, c))
	}
	return join(lang, parts)
}

// join lists parts as the language does: Arabic joins every part with
// «و» prefixed to it («يوم واحد وساعتان و5 دقائق»), English with commas
// and a final "and".
func join(lang string, parts []string) string {
	if lang == AR {
		return strings.Join(parts, " و")
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// lessThanAMinute is what Remaining says in the last minute.
var lessThanAMinute = Text{AR: "أقل من دقيقة", EN: "less than a minute"}

// Remaining words the time left of something that ends (a session, a
// PIN) as a label's value: whole minutes rounded up, so a fresh 4-hour
// session reads «4 ساعات», not «3 ساعات و59 دقيقة», and the last minute
// reads "less than a minute" rather than "0 minutes".
func Remaining(lang string, d time.Duration) string {
	switch {
	case d <= 0:
		return Minutes.Count(lang, 0, Nominative)
	case d < time.Minute:
		return lessThanAMinute.In(lang)
	}
	return Duration(lang, ceilMinute(d), Nominative)
}

// Wait words how long to wait before trying again, after "in" / «بعد»
// (the genitive): seconds under a minute, otherwise minutes rounded up,
// so nobody is told to come back before they may.
func Wait(lang string, d time.Duration) string {
	if d < time.Minute {
		secs := max(int((d+time.Second-1)/time.Second), 1)
		if secs < 60 {
			return Seconds.Count(lang, secs, Genitive)
		}
	}
	return Duration(lang, ceilMinute(d), Genitive)
}

// ceilMinute rounds d up to a whole minute.
func ceilMinute(d time.Duration) time.Duration {
	return (d + time.Minute - 1) / time.Minute * time.Minute
}
