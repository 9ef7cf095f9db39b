package settings

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/parkwifi/parkportal/i18n"
)

// FieldError is what is wrong with one field: a message code and the
// values the message names (already formatted, user input quoted). The
// console renders it in the page's language (In); the JSON API, the CLI
// and Error use English, so scripts see one stable text.
type FieldError struct {
	Code   string
	Params []string
}

// fieldError builds a FieldError.
func fieldError(code string, params ...string) FieldError {
	return FieldError{Code: code, Params: params}
}

// Error is the English message, so a FieldError is also an error (the
// parsers return one for the console to show per field).
func (e FieldError) Error() string { return e.In("en") }

// String is the English message.
func (e FieldError) String() string { return e.In("en") }

// MarshalJSON writes the English message: the API's "fields" object maps
// each field to a string.
func (e FieldError) MarshalJSON() ([]byte, error) { return json.Marshal(e.In("en")) }

// In renders e in lang ("ar" or "en"; anything else is English). In
// Arabic each value is wrapped in U+2068 FIRST STRONG ISOLATE … U+2069
// POP DIRECTIONAL ISOLATE, so "8mbit", "+9743" or a quoted entry keeps
// its own direction inside the right-to-left sentence. A counted message
// («160 حرفًا على الأكثر», «حرفان على الأكثر») takes its plural form from
// the first value, a whole number.
func (e FieldError) In(lang string) string {
	m, ok := fieldMessages[e.Code]
	if !ok {
		return strings.TrimSpace(e.Code + " " + strings.Join(e.Params, " "))
	}
	text := m.In(lang)
	if m.Counted() {
		n := 0
		if len(e.Params) > 0 {
			n, _ = strconv.Atoi(e.Params[0])
		}
		text = m.Count(lang, n)
	}
	params := e.Params
	if lang == i18n.AR {
		params = make([]string, len(e.Params))
		for i, p := range e.Params {
			params[i] = "\u2068" + p + "\u2069"
		}
	}
	return i18n.Fill(text, params...)
}

// fieldMessages holds each code's message; {1}, {2}, ... are its Params
// in order ({pin} is literal text). A counted message's {n} is its first
// Param, a number.
var fieldMessages = i18n.Catalog{
	"name_required": {EN: "required: the park needs a name in Arabic and in English", AR: "مطلوب: تحتاج الحديقة إلى اسم بالعربية وبالإنجليزية"},
	"max_chars": {
		CountEN: i18n.Forms{i18n.One: "at most 1 character", i18n.Other: "at most {n} characters"},
		CountAR: arAtMost("حرف واحد", "حرفان", "أحرف", "حرفًا", "حرف"),
	},
	"one_line":         {EN: "one line of text", AR: "سطر واحد من النص"},
	"duration_range":   {EN: "want a duration from {1} to {2}, got {3}", AR: "المطلوب مدة من {1} إلى {2}، والمُدخل {3}"},
	"duration_syntax":  {EN: "want a duration like 20m or 4h, got {1}", AR: "المطلوب مدة مثل 20m أو 4h، والمُدخل {1}"},
	"number_range":     {EN: "want a whole number from {1} to {2}, got {3}", AR: "المطلوب عدد صحيح من {1} إلى {2}، والمُدخل {3}"},
	"whole_number":     {EN: "want a whole number", AR: "المطلوب عدد صحيح"},
	"rate_required":    {EN: "required: a rate like 8mbit", AR: "مطلوب: سرعة مثل 8mbit"},
	"rate_min":         {EN: "at least 64kbit (a page would not load below that)", AR: "64kbit على الأقل (لا تُحمَّل الصفحات بأقل من ذلك)"},
	"rate_max":         {EN: "at most 100gbit", AR: "100gbit على الأكثر"},
	"rate_syntax":      {EN: "want a rate like 8mbit or 512kbit, got {1}", AR: "المطلوب سرعة مثل 8mbit أو 512kbit، والمُدخل {1}"},
	"rate_over_uplink": {EN: "higher than the uplink ({1})", AR: "أعلى من سعة الوصلة ({1})"},
	"max_entries": {
		CountEN: i18n.Forms{i18n.One: "at most 1 entry", i18n.Other: "at most {n} entries"},
		CountAR: arAtMost("عنصر واحد", "عنصران", "عناصر", "عنصرًا", "عنصر"),
	},
	"walled_garden_entry": {EN: "want IPv4 addresses or prefixes like 203.0.113.0/28, got {1}", AR: "المطلوب عناوين IPv4 أو نطاقات مثل 203.0.113.0/28، والمُدخل {1}"},
	"required":            {EN: "required", AR: "مطلوب"},
	"template_pin":        {EN: "must contain {pin}", AR: "يجب أن تحتوي على {pin}"},
	"template_max": {
		CountEN: i18n.Forms{i18n.One: "at most 1 character (about two SMS)", i18n.Other: "at most {n} characters (about two SMS)"},
		CountAR: withSuffix(arAtMost("حرف واحد", "حرفان", "أحرف", "حرفًا", "حرف"), " (نحو رسالتين نصيتين)"),
	},
	"template_langs":      {EN: "only ar and en, got {1}", AR: "العربية (ar) والإنجليزية (en) فقط، والمُدخل {1}"},
	"phone_region":        {EN: "want a two-letter region like QA, got {1}", AR: "المطلوب رمز منطقة من حرفين مثل QA، والمُدخل {1}"},
	"prefixes_required":   {EN: "at least one prefix like +9743 (otherwise no SMS can be sent)", AR: "بادئة واحدة على الأقل مثل \u2066+9743\u2069 (وإلا فلن تُرسل أي رسالة)"},
	"prefix_entry":        {EN: "want + and digits like +9743, got {1}", AR: "المطلوب علامة + تتبعها أرقام مثل \u2066+9743\u2069، والمُدخل {1}"},
	"privacy_url":         {EN: "want an http(s) URL like https://example.org/privacy, or nothing", AR: "المطلوب رابط http أو https مثل https://example.org/privacy، أو اتركه فارغًا"},
	"url":                 {EN: "want an http(s) URL like https://example.org/terms, or nothing", AR: "المطلوب رابط http أو https مثل https://example.org/terms، أو اتركه فارغًا"},
	"terms_empty":         {EN: "visitors cannot accept terms that are empty: write the terms or give a terms or privacy URL", AR: "لا يمكن للزوار قبول شروط فارغة: اكتب الشروط أو أضف رابط الشروط أو إشعار الخصوصية"},
	"fail_policy":         {EN: "want open or closed, got {1}", AR: "المطلوب open أو closed، والمُدخل {1}"},
	"radius_servers_max":  {EN: "at most 8 servers", AR: "8 خوادم على الأكثر"},
	"radius_server_entry": {EN: "want address:port like 192.0.2.5:1812, got {1}", AR: "المطلوب العنوان:المنفذ مثل 192.0.2.5:1812، والمُدخل {1}"},
	"radius_no_servers":   {EN: "RADIUS is enabled: give at least one server", AR: "RADIUS مفعّل: أضف خادمًا واحدًا على الأقل"},
	"radius_in_config": {
		EN: "set in the config file (its radius section: authorization, auth_server, fail_policy), which parkportal reads at every start: edit it there and restart",
		AR: "يُضبط في ملف الإعداد (قسم radius فيه: authorization و auth_server و fail_policy) الذي يقرؤه parkportal عند كل تشغيل: عدّله هناك ثم أعد التشغيل",
	},
	"radius_no_secret": {
		EN: "RADIUS cannot be used: the config file has no shared secret (set secret or secret_file in its radius section and restart parkportal, or turn RADIUS off)",
		AR: "لا يمكن استخدام RADIUS: ملف الإعداد لا يحتوي على السر المشترك (اضبط secret أو secret_file في قسم radius وأعد تشغيل parkportal، أو أوقف RADIUS)",
	},
}

// arAtMost words "at most N things" in Arabic from the noun's forms: one
// and two alone («حرف واحد», «حرفان»), the plural for 3–10 («أحرف»), the
// accusative singular for 11–99 («حرفًا») and the genitive singular for
// 100 and up («حرف»).
func arAtMost(one, two, few, many, other string) i18n.Forms {
	const tail = " على الأكثر"
	return i18n.Forms{
		i18n.Zero:  "{n} " + other + tail,
		i18n.One:   one + tail,
		i18n.Two:   two + tail,
		i18n.Few:   "{n} " + few + tail,
		i18n.Many:  "{n} " + many + tail,
		i18n.Other: "{n} " + other + tail,
	}
}

// withSuffix appends s to every form.
func withSuffix(f i18n.Forms, s string) i18n.Forms {
	for i := range f {
		if f[i] != "" {
			f[i] += s
		}
	}
	return f
}

// FieldErrors maps a field's JSON name to what is wrong with it, so a
// form can show each message next to its field.
type FieldErrors map[string]FieldError

// Error lists every field's problem in a stable order, in English.
func (fe FieldErrors) Error() string {
	keys := fe.Fields()
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+fe[k].In("en"))
	}
	return "invalid site settings: " + strings.Join(parts, "; ")
}

// Fields returns the fields with an error, sorted.
func (fe FieldErrors) Fields() []string {
	keys := make([]string, 0, len(fe))
	for k := range fe {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// English returns every field's message in English, as the API sends
// them.
func (fe FieldErrors) English() map[string]string {
	out := make(map[string]string, len(fe))
	for k, e := range fe {
		out[k] = e.In("en")
	}
	return out
}
