package portal

import (
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/parkwifi/parkportal/i18n"
	"github.com/parkwifi/parkportal/limits"
)

// Languages: Arabic first (the default), English second.
const (
	langAR = i18n.AR
	langEN = i18n.EN
)

// catalog is every text the visitors' pages show, in both languages.
// Pages ask for a key with {{T "key"}} (T is bound to the page's
// language); tests check that every key a page uses exists and that
// every text has both languages (and every plural form Arabic needs).
// Problems (the messages in the red box) are keyed "problem." + their
// code and always shown in both languages.
var catalog = i18n.Catalog{
	// The language switch names the other language in itself.
	"lang.other": {AR: "English", EN: "العربية"},

	"title":         {AR: "إنترنت الحدائق", EN: "Park Wi-Fi"},
	"intro":         {AR: "أدخل رقم هاتفك الجوال لتصلك رسالة برمز الدخول.", EN: "Enter your mobile number and we will text you a login code."},
	"free":          {AR: "إنترنت مجاني.", EN: "Free Internet."},
	"free.at":       {AR: "إنترنت مجاني بسرعة {1}.", EN: "Free Internet at {1}."},
	"rate.kbit":     {AR: "كيلوبت في الثانية", EN: "kbit/s"},
	"rate.mbit":     {AR: "ميغابت في الثانية", EN: "Mbit/s"},
	"rate.gbit":     {AR: "غيغابت في الثانية", EN: "Gbit/s"},
	"speed":         {AR: "السرعة", EN: "Speed"},
	"phone.label":   {AR: "رقم الجوال", EN: "Mobile number"},
	"phone.hint":    {AR: "مثال: 33123456", EN: "e.g. 33123456"},
	"phone.send":    {AR: "أرسل رمز الدخول", EN: "Send login code"},
	"privacy.title": {AR: "خصوصيتك", EN: "Your privacy"},
	"privacy": {
		AR: "نحفظ رقم هاتفك وعنوان جهازك وأوقات اتصالك لتشغيل الخدمة وأمنها وفق قانون حماية البيانات الشخصية، ولا نشاركها لأغراض تجارية. بمتابعتك توافق على ذلك.",
		EN: "We keep your phone number, your device's address and your connection times to run and secure this service, as the personal data protection law requires, and never share them for marketing. By continuing you agree to this.",
	},
	// {1} is the retention period in the accusative: «90 يومًا», «يومين».
	"privacy.retention": {AR: "نحتفظ بهذه البيانات {1} ثم نحذفها.", EN: "We keep them for {1}, then delete them."},
	"privacy.more":      {AR: "سياسة الخصوصية الكاملة", EN: "Full privacy notice"},
	"pin.title":         {AR: "أدخل رمز الدخول", EN: "Enter your login code"},
	"pin.sent":          {AR: "أرسلنا رمزًا من 6 أرقام إلى", EN: "We sent a 6-digit code to"},
	"pin.label":         {AR: "رمز الدخول", EN: "Login code"},
	"pin.hint":          {AR: "6 أرقام", EN: "6 digits"},
	"pin.verify":        {AR: "اتصل", EN: "Connect"},
	"pin.resend":        {AR: "أرسل رمزًا جديدًا", EN: "Send a new code"},
	"pin.change":        {AR: "تغيير الرقم", EN: "Change number"},
	"terms.accept":      {AR: "أوافق على شروط الاستخدام", EN: "I accept the terms of use"},
	"terms.read":        {AR: "اقرأ الشروط", EN: "Read the terms"},
	"terms.title":       {AR: "شروط الاستخدام", EN: "Terms of use"},
	"terms.back":        {AR: "العودة إلى صفحة الدخول", EN: "Back to sign-in"},
	"status.title":      {AR: "أنت متصل", EN: "You are online"},
	"status.connected":  {AR: "تم الاتصال بالإنترنت. استمتع بوقتك في الحديقة.", EN: "You are connected to the Internet. Enjoy the park."},
	"status.left":       {AR: "الوقت المتبقي", EN: "Time left"},
	"status.used":       {AR: "البيانات المستخدمة", EN: "Data used"},
	"logout":            {AR: "تسجيل الخروج", EN: "Log out"},
	"logout.done":       {AR: "تم تسجيل خروجك.", EN: "You have logged out."},

	"problem.malformed-number": {
		AR: "هذا ليس رقم جوال صحيحًا. اكتب رقمك المكوّن من 8 أرقام، مثل 33123456.",
		EN: "That is not a valid mobile number. Type your 8-digit number, e.g. 33123456."},
	"problem.number-not-allowed": {
		AR: "لا يمكن إرسال الرمز إلى هذا الرقم. الخدمة متاحة لأرقام الجوال القطرية.",
		EN: "We cannot send a code to this number. The service is for Qatari mobile numbers."},
	"problem.device-not-visible": {
		AR: "تعذّر التعرّف على جهازك في شبكة الحديقة. أعد الاتصال بشبكة الواي فاي ثم حاول مرة أخرى.",
		EN: "We cannot see your device on the park network. Reconnect to the Wi-Fi and try again."},
	"problem.malformed-pin": {
		AR: "رمز الدخول 6 أرقام. تحقق من الرسالة وأعد كتابته.",
		EN: "The login code is 6 digits. Check the message and type it again."},
	"problem.no-pending-pin": {
		AR: "لا يوجد رمز صالح لهذا الجهاز (ربما استُخدم من قبل). اطلب رمزًا جديدًا.",
		EN: "There is no valid code for this device (it may have been used already). Ask for a new code."},
	"problem.expired-pin": {
		AR: "انتهت صلاحية الرمز. اطلب رمزًا جديدًا.",
		EN: "This code has expired. Ask for a new one."},
	"problem.too-many-tries": {
		AR: "محاولات خاطئة كثيرة، أُلغي الرمز. اطلب رمزًا جديدًا.",
		EN: "Too many wrong tries; the code is cancelled. Ask for a new one."},
	"problem.sms-unavailable": {
		AR: "تعذّر إرسال الرسالة الآن. حاول مرة أخرى بعد قليل.",
		EN: "We could not send the message just now. Please try again in a minute."},
	// The provider refused our account (credentials, credit): nothing the
	// visitor can do, and no other number would help.
	"problem.sms-paused": {
		AR: "لا يمكننا إرسال الرسائل الآن بسبب عطل في خدمة الرسائل، وقد أُبلغ موظفو الحديقة. حاول مرة أخرى لاحقًا.",
		EN: "We cannot send messages right now: the park's SMS service has a fault and the park's staff have been told. Please try again later."},
	"problem.sms-undeliverable": {
		AR: "لا يمكن إيصال الرسائل إلى هذا الرقم. جرّب رقمًا آخر.",
		EN: "Messages cannot be delivered to this number. Try another number."},
	"problem.terms-required": {
		AR: "يرجى الموافقة على شروط الاستخدام للمتابعة.",
		EN: "Please accept the terms of use to continue."},
	"problem.number-blocked": {
		AR: "هذا الرقم غير مسموح له باستخدام إنترنت الحدائق. للاستفسار تواصل مع إدارة الحديقة.",
		EN: "This number may not use the parks' Wi-Fi. Please contact the park's staff."},
	"problem.auth-unavailable": {
		AR: "تعذّر التحقق من رقمك الآن. حاول مرة أخرى بعد قليل.",
		EN: "We could not check your number just now. Please try again in a minute."},
	"problem.address-in-use": {
		AR: "عنوان جهازك على الشبكة يستخدمه جهاز آخر متصل. أعد الاتصال بشبكة الواي فاي ثم حاول مرة أخرى.",
		EN: "Your device's network address is in use by another connected device. Reconnect to the Wi-Fi, then try again."},
	"problem.cross-origin": {
		AR: "رُفض الطلب لأنه لم يأتِ من صفحة الحديقة. افتح صفحة الدخول وحاول مرة أخرى.",
		EN: "The request was refused because it did not come from the park's page. Open the sign-in page and try again."},
	"problem.internal": {
		AR: "حدث خطأ من جهتنا ولم يتغيّر شيء. حاول مرة أخرى.",
		EN: "Something went wrong on our side and nothing was changed. Please try again."},
	"problem.bad-request": {
		AR: "تعذّرت قراءة الطلب. حاول مرة أخرى.",
		EN: "We could not read that request. Please try again."},
	// The tries a PIN has left after a wrong one (never zero: the last
	// wrong try voids the PIN, see too-many-tries).
	"problem.wrong-pin": {
		CountAR: i18n.Forms{
			i18n.Zero:  "الرمز غير صحيح. لم تبقَ أي محاولة.",
			i18n.One:   "الرمز غير صحيح. بقيت محاولة واحدة.",
			i18n.Two:   "الرمز غير صحيح. بقيت محاولتان.",
			i18n.Few:   "الرمز غير صحيح. بقيت {n} محاولات.",
			i18n.Many:  "الرمز غير صحيح. بقيت {n} محاولة.",
			i18n.Other: "الرمز غير صحيح. بقيت {n} محاولة.",
		},
		CountEN: i18n.Forms{i18n.One: "Wrong code. 1 try left.", i18n.Other: "Wrong code. {n} tries left."},
	},
	// Abuse limits; {1} is how long to wait, after «بعد» (genitive).
	"problem.limit-per-number": {
		AR: "أُرسلت رسائل كثيرة إلى هذا الرقم. حاول مرة أخرى بعد {1}.",
		EN: "Too many messages were sent to this number. Try again in {1}."},
	"problem.limit-per-device": {
		AR: "طلب هذا الجهاز رسائل كثيرة. حاول مرة أخرى بعد {1}.",
		EN: "This device asked for too many messages. Try again in {1}."},
	"problem.limit-site-budget": {
		AR: "بلغت الحديقة حدّها اليومي من الرسائل. حاول مرة أخرى بعد {1}.",
		EN: "The park has reached today's message limit. Try again in {1}."},
	"problem.limit-resend-gap": {
		AR: "أرسلنا رمزًا للتو. يمكنك طلب رمز جديد بعد {1}.",
		EN: "We just sent a code. You can ask for a new one in {1}."},
	"problem.limit-pin-backoff": {
		AR: "محاولات خاطئة كثيرة. حاول مرة أخرى بعد {1}.",
		EN: "Too many wrong codes. Try again in {1}."},
	"problem.limit": {
		AR: "حاول مرة أخرى بعد {1}.",
		EN: "Please try again in {1}."},
}

// tr returns key's text in lang; args fill {1}, {2}, ….
func tr(lang, key string, args ...string) string {
	return i18n.Fill(catalog.T(lang, key), args...)
}

// problem is a visitor-facing error, always shown in both languages: a
// visitor who switched to the wrong language still understands it.
type problem struct {
	Status int
	Code   string // stable identifier, for tests and staff
	AR, EN string
}

func (p *problem) Error() string { return p.Code }

// newProblem makes the problem with code; its texts are the catalogue's
// "problem." + code, with args for {1}, {2}, ….
func newProblem(status int, code string, args ...string) *problem {
	key := "problem." + code
	return &problem{Status: status, Code: code, AR: tr(langAR, key, args...), EN: tr(langEN, key, args...)}
}

var (
	errMalformedNumber  = newProblem(http.StatusBadRequest, "malformed-number")
	errNumberNotAllowed = newProblem(http.StatusForbidden, "number-not-allowed")
	errNoDevice         = newProblem(http.StatusBadRequest, "device-not-visible")
	errMalformedPIN     = newProblem(http.StatusBadRequest, "malformed-pin")
	errNoPending        = newProblem(http.StatusBadRequest, "no-pending-pin")
	errExpiredPIN       = newProblem(http.StatusBadRequest, "expired-pin")
	errTooManyTries     = newProblem(http.StatusTooManyRequests, "too-many-tries")
	errSMSTemporary     = newProblem(http.StatusServiceUnavailable, "sms-unavailable")
	errSMSPermanent     = newProblem(http.StatusBadRequest, "sms-undeliverable")
	errSMSPaused        = newProblem(http.StatusServiceUnavailable, "sms-paused")
	errTermsRequired    = newProblem(http.StatusBadRequest, "terms-required")
	errNumberBlocked    = newProblem(http.StatusForbidden, "number-blocked")
	errAuthUnavailable  = newProblem(http.StatusServiceUnavailable, "auth-unavailable")
	errAddressInUse     = newProblem(http.StatusConflict, "address-in-use")
	errCrossOrigin      = newProblem(http.StatusForbidden, "cross-origin")
	errInternal         = newProblem(http.StatusInternalServerError, "internal")
	errBadRequest       = newProblem(http.StatusBadRequest, "bad-request")
)

// wrongPIN is the miss message, which says how many tries remain.
func wrongPIN(left int) *problem {
	t := catalog["problem.wrong-pin"]
	return &problem{http.StatusBadRequest, "wrong-pin", t.Count(langAR, left), t.Count(langEN, left)}
}

// pickLang chooses the page language: an explicit ?lang= wins, then the
// visitor's earlier choice (cookie), then the browser's languages in
// order, then Arabic.
func pickLang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == langAR || l == langEN {
		return l
	}
	if c, err := r.Cookie("lang"); err == nil && (c.Value == langAR || c.Value == langEN) {
		return c.Value
	}
	al := r.Header.Get("Accept-Language")
	if len(al) > 256 {
		al = al[:256]
	}
	for _, part := range strings.Split(al, ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch {
		case strings.HasPrefix(tag, "ar"):
			return langAR
		case strings.HasPrefix(tag, "en"):
			return langEN
		}
	}
	return langAR
}

// limited explains a refusal by an abuse limit and when to try again
// («بعد دقيقتين», "in 2 minutes": seconds under a minute, otherwise
// whole minutes rounded up, so nobody is sent back too early).
func limited(d limits.Decision) *problem {
	code := "limit-" + d.Reason.String()
	key := "problem." + code
	if _, ok := catalog[key]; !ok {
		key = "problem.limit"
	}
	return &problem{Status: http.StatusTooManyRequests, Code: code,
		AR: tr(langAR, key, i18n.Wait(langAR, d.RetryAfter)), EN: tr(langEN, key, i18n.Wait(langEN, d.RetryAfter))}
}

// formatRate renders a rate in bit/s the way the visitor's page words it:
// "8 Mbit/s", "8 ميغابت في الثانية". Digits stay Latin in both languages,
// as everywhere else on the pages (PIN hint, data used, time left), and
// a fraction keeps one decimal ("1.5 Mbit/s"). Units are decimal, as in
// the rates staff set ("8mbit" is 8,000,000 bit/s).
func formatRate(bps uint64, lang string) string {
	unit, div := "rate.kbit", 1e3
	switch {
	case bps >= 1e9:
		unit, div = "rate.gbit", 1e9
	case bps >= 1e6:
		unit, div = "rate.mbit", 1e6
	}
	n := strconv.FormatFloat(math.Round(float64(bps)/div*10)/10, 'f', -1, 64)
	return n + " " + tr(lang, unit)
}
