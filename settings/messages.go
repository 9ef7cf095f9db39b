package settings

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
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
// its own direction inside the right-to-left sentence.
func (e FieldError) In(lang string) string {
	m, ok := fieldMessages[e.Code]
	if !ok {
		return strings.TrimSpace(e.Code + " " + strings.Join(e.Params, " "))
	}
	text := m[0]
	if lang == "ar" && m[1] != "" {
		text = m[1]
	}
	for i, p := range e.Params {
		if lang == "ar" {
			p = "\u2068" + p + "\u2069"
		}
		text = strings.ReplaceAll(text, "{"+strconv.Itoa(i+1)+"}", p)
	}
	return text
}

// fieldMessages holds each code's message, [0] English and [1] Arabic;
// {1}, {2}, ... are its Params in order. ({pin} is literal text.)
var fieldMessages = map[string][2]string{
	"name_required":       {"required: the park needs a name in Arabic and in English", "مطلوب: تحتاج الحديقة إلى اسم بالعربية وبالإنجليزية"},
	"max_chars":           {"at most {1} characters", "{1} حرفًا على الأكثر"},
	"one_line":            {"one line of text", "سطر واحد من النص"},
	"duration_range":      {"want a duration from {1} to {2}, got {3}", "المطلوب مدة من {1} إلى {2}، والمُدخل {3}"},
	"duration_syntax":     {"want a duration like 20m or 4h, got {1}", "المطلوب مدة مثل 20m أو 4h، والمُدخل {1}"},
	"idle_over_session":   {"must not be longer than the session timeout", "يجب ألا تكون أطول من مدة الجلسة"},
	"number_range":        {"want a whole number from {1} to {2}, got {3}", "المطلوب عدد صحيح من {1} إلى {2}، والمُدخل {3}"},
	"whole_number":        {"want a whole number", "المطلوب عدد صحيح"},
	"rate_required":       {"required: a rate like 8mbit", "مطلوب: سرعة مثل 8mbit"},
	"rate_min":            {"at least 64kbit (a page would not load below that)", "64kbit على الأقل (لا تُحمَّل الصفحات بأقل من ذلك)"},
	"rate_max":            {"at most 100gbit", "100gbit على الأكثر"},
	"rate_syntax":         {"want a rate like 8mbit or 512kbit, got {1}", "المطلوب سرعة مثل 8mbit أو 512kbit، والمُدخل {1}"},
	"rate_over_uplink":    {"higher than the uplink ({1})", "أعلى من سعة الوصلة ({1})"},
	"max_entries":         {"at most {1} entries", "{1} عنصرًا على الأكثر"},
	"walled_garden_entry": {"want IPv4 addresses or prefixes like 203.0.113.0/28, got {1}", "المطلوب عناوين IPv4 أو نطاقات مثل 203.0.113.0/28، والمُدخل {1}"},
	"required":            {"required", "مطلوب"},
	"template_pin":        {"must contain {pin}", "يجب أن تحتوي على {pin}"},
	"template_max":        {"at most {1} characters (about two SMS)", "{1} حرفًا على الأكثر (نحو رسالتين نصيتين)"},
	"template_langs":      {"only ar and en, got {1}", "العربية (ar) والإنجليزية (en) فقط، والمُدخل {1}"},
	"phone_region":        {"want a two-letter region like QA, got {1}", "المطلوب رمز منطقة من حرفين مثل QA، والمُدخل {1}"},
	"prefixes_required":   {"at least one prefix like +9743 (otherwise no SMS can be sent)", "بادئة واحدة على الأقل مثل \u2066+9743\u2069 (وإلا فلن تُرسل أي رسالة)"},
	"prefix_entry":        {"want + and digits like +9743, got {1}", "المطلوب علامة + تتبعها أرقام مثل \u2066+9743\u2069، والمُدخل {1}"},
	"privacy_url":         {"want an http(s) URL like https://example.org/privacy, or nothing", "المطلوب رابط http أو https مثل https://example.org/privacy، أو اتركه فارغًا"},
	"terms_empty":         {"visitors cannot accept terms that are empty: write the terms or give a privacy URL", "لا يمكن للزوار قبول شروط فارغة: اكتب الشروط أو أضف رابط إشعار الخصوصية"},
	"fail_policy":         {"want open or closed, got {1}", "المطلوب open أو closed، والمُدخل {1}"},
	"radius_servers_max":  {"at most 8 servers", "8 خوادم على الأكثر"},
	"radius_server_entry": {"want address:port like 192.0.2.5:1812, got {1}", "المطلوب العنوان:المنفذ مثل 192.0.2.5:1812، والمُدخل {1}"},
	"radius_no_servers":   {"RADIUS is enabled: give at least one server", "RADIUS مفعّل: أضف خادمًا واحدًا على الأقل"},
	"radius_no_secret": {
		"RADIUS cannot be used: the config file has no shared secret (set secret or secret_file in its radius section and restart parkportal, or turn RADIUS off)",
		"لا يمكن استخدام RADIUS: ملف الإعداد لا يحتوي على السر المشترك (اضبط secret أو secret_file في قسم radius وأعد تشغيل parkportal، أو أوقف RADIUS)",
	},
}

// FieldErrors maps a field's JSON name to what is wrong with it, so a
// form can show each message next to its field.
type FieldErrors map[string]FieldError

// Error lists every field's problem in a stable order, in English.
func (fe FieldErrors) Error() string {
	keys := make([]string, 0, len(fe))
	for k := range fe {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+fe[k].In("en"))
	}
	return "invalid site settings: " + strings.Join(parts, "; ")
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
