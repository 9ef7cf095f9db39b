package portal

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parkwifi/parkportal/limits"
)

// Languages: Arabic first (the default), English second.
const (
	langAR = "ar"
	langEN = "en"
)

// texts is every string a page shows, in one language. A struct rather
// than a map so a misspelt key is a compile error; a test checks that no
// field is left empty in either language.
type texts struct {
	Lang, Dir, OtherLang, OtherName                string
	Title, Welcome, Intro                          string
	Free, FreeAt                                   string
	Kbit, Mbit, Gbit, Speed                        string
	PhoneLabel, PhoneHint, SendPIN                 string
	PrivacyTitle, Privacy, PrivacyMore             string
	PINTitle, PINSentTo, PINLabel, PINHint, Verify string
	Resend, ChangeNumber                           string
	AcceptTerms, TermsLink, TermsTitle, Back       string
	ConnectedTitle, Connected, TimeLeft, Logout    string
	LoggedOut, Start                               string
	Hours, Minutes                                 string
	DataUsed, Retention                            string
}

var textsByLang = map[string]*texts{
	langAR: {
		Lang: "ar", Dir: "rtl", OtherLang: "en", OtherName: "English",
		Title: "إنترنت الحدائق", Welcome: "أهلاً بك في", Intro: "أدخل رقم هاتفك الجوال لتصلك رسالة برمز الدخول.",
		Free: "إنترنت مجاني.", FreeAt: "إنترنت مجاني بسرعة %s.",
		Kbit: "كيلوبت في الثانية", Mbit: "ميغابت في الثانية", Gbit: "غيغابت في الثانية", Speed: "السرعة",
		PhoneLabel: "رقم الجوال", PhoneHint: "مثال: 33123456", SendPIN: "أرسل رمز الدخول",
		PrivacyTitle: "خصوصيتك",
		Privacy:      "نحفظ رقم هاتفك وعنوان جهازك وأوقات اتصالك لتشغيل الخدمة وأمنها وفق قانون حماية البيانات الشخصية، ولا نشاركها لأغراض تجارية. بمتابعتك توافق على ذلك.",
		PrivacyMore:  "سياسة الخصوصية الكاملة",
		PINTitle:     "أدخل رمز الدخول", PINSentTo: "أرسلنا رمزاً من 6 أرقام إلى", PINLabel: "رمز الدخول", PINHint: "6 أرقام",
		Verify: "اتصل", Resend: "أرسل رمزاً جديداً", ChangeNumber: "تغيير الرقم",
		AcceptTerms: "أوافق على شروط الاستخدام", TermsLink: "اقرأ الشروط", TermsTitle: "شروط الاستخدام", Back: "العودة إلى صفحة الدخول",
		ConnectedTitle: "أنت متصل", Connected: "تم الاتصال بالإنترنت. استمتع بوقتك في الحديقة.", TimeLeft: "الوقت المتبقي",
		Logout: "تسجيل الخروج", LoggedOut: "تم تسجيل خروجك.", Start: "البداية",
		Hours: "ساعة", Minutes: "دقيقة",
		DataUsed: "البيانات المستخدمة", Retention: "نحتفظ بهذه البيانات %d يوماً ثم نحذفها.",
	},
	langEN: {
		Lang: "en", Dir: "ltr", OtherLang: "ar", OtherName: "العربية",
		Title: "Park Wi-Fi", Welcome: "Welcome to", Intro: "Enter your mobile number and we will text you a login code.",
		Free: "Free Internet.", FreeAt: "Free Internet at %s.",
		Kbit: "kbit/s", Mbit: "Mbit/s", Gbit: "Gbit/s", Speed: "Speed",
		PhoneLabel: "Mobile number", PhoneHint: "e.g. 33123456", SendPIN: "Send login code",
		PrivacyTitle: "Your privacy",
		Privacy:      "We keep your phone number, your device's address and your connection times to run and secure this service, as the personal data protection law requires, and never share them for marketing. By continuing you agree to this.",
		PrivacyMore:  "Full privacy notice",
		PINTitle:     "Enter your login code", PINSentTo: "We sent a 6-digit code to", PINLabel: "Login code", PINHint: "6 digits",
		Verify: "Connect", Resend: "Send a new code", ChangeNumber: "Change number",
		AcceptTerms: "I accept the terms of use", TermsLink: "Read the terms", TermsTitle: "Terms of use", Back: "Back to sign-in",
		ConnectedTitle: "You are online", Connected: "You are connected to the Internet. Enjoy the park.", TimeLeft: "Time left",
		Logout: "Log out", LoggedOut: "You have logged out.", Start: "Start",
		Hours: "h", Minutes: "min",
		DataUsed: "Data used", Retention: "We keep them for %d days, then delete them.",
	},
}

// problem is a visitor-facing error, always shown in both languages: a
// visitor who switched to the wrong language still understands it.
type problem struct {
	Status int
	Code   string // stable identifier, for tests and staff
	AR, EN string
}

func (p *problem) Error() string { return p.Code }

var (
	errMalformedNumber = &problem{http.StatusBadRequest, "malformed-number",
		"هذا ليس رقم جوال صحيحاً. اكتب رقمك المكوّن من 8 أرقام، مثل 33123456.",
		"That is not a valid mobile number. Type your 8-digit number, e.g. 33123456."}
	errNumberNotAllowed = &problem{http.StatusForbidden, "number-not-allowed",
		"لا يمكن إرسال الرمز إلى هذا الرقم. الخدمة متاحة لأرقام الجوال القطرية.",
		"We cannot send a code to this number. The service is for Qatari mobile numbers."}
	errNoDevice = &problem{http.StatusBadRequest, "device-not-visible",
		"تعذّر التعرّف على جهازك في شبكة الحديقة. أعد الاتصال بشبكة الواي فاي ثم حاول مرة أخرى.",
		"We cannot see your device on the park network. Reconnect to the Wi-Fi and try again."}
	errMalformedPIN = &problem{http.StatusBadRequest, "malformed-pin",
		"رمز الدخول 6 أرقام. تحقق من الرسالة وأعد كتابته.",
		"The login code is 6 digits. Check the message and type it again."}
	errNoPending = &problem{http.StatusBadRequest, "no-pending-pin",
		"لا يوجد رمز صالح لهذا الجهاز (ربما استُخدم من قبل). اطلب رمزاً جديداً.",
		"There is no valid code for this device (it may have been used already). Ask for a new code."}
	errExpiredPIN = &problem{http.StatusBadRequest, "expired-pin",
		"انتهت صلاحية الرمز. اطلب رمزاً جديداً.",
		"This code has expired. Ask for a new one."}
	errTooManyTries = &problem{http.StatusTooManyRequests, "too-many-tries",
		"محاولات خاطئة كثيرة، أُلغي الرمز. اطلب رمزاً جديداً.",
		"Too many wrong tries; the code is cancelled. Ask for a new one."}
	errSMSTemporary = &problem{http.StatusServiceUnavailable, "sms-unavailable",
		"تعذّر إرسال الرسالة الآن. حاول مرة أخرى بعد قليل.",
		"We could not send the message just now. Please try again in a minute."}
	errSMSPermanent = &problem{http.StatusBadRequest, "sms-undeliverable",
		"لا يمكن إيصال الرسائل إلى هذا الرقم. جرّب رقماً آخر.",
		"Messages cannot be delivered to this number. Try another number."}
	errTermsRequired = &problem{http.StatusBadRequest, "terms-required",
		"يرجى الموافقة على شروط الاستخدام للمتابعة.",
		"Please accept the terms of use to continue."}
	errNumberBlocked = &problem{http.StatusForbidden, "number-blocked",
		"هذا الرقم غير مسموح له باستخدام إنترنت الحدائق. للاستفسار تواصل مع إدارة الحديقة.",
		"This number may not use the parks' Wi-Fi. Please contact the park's staff."}
	errAuthUnavailable = &problem{http.StatusServiceUnavailable, "auth-unavailable",
		"تعذّر التحقق من رقمك الآن. حاول مرة أخرى بعد قليل.",
		"We could not check your number just now. Please try again in a minute."}
	errAddressInUse = &problem{http.StatusConflict, "address-in-use",
		"عنوان جهازك على الشبكة يستخدمه جهاز آخر متصل. أعد الاتصال بشبكة الواي فاي ثم حاول مرة أخرى.",
		"Your device's network address is in use by another connected device. Reconnect to the Wi-Fi, then try again."}
	errCrossOrigin = &problem{http.StatusForbidden, "cross-origin",
		"رُفض الطلب لأنه لم يأتِ من صفحة الحديقة. افتح صفحة الدخول وحاول مرة أخرى.",
		"The request was refused because it did not come from the park's page. Open the sign-in page and try again."}
	errInternal = &problem{http.StatusInternalServerError, "internal",
		"حدث خطأ من جهتنا ولم يتغيّر شيء. حاول مرة أخرى.",
		"Something went wrong on our side and nothing was changed. Please try again."}
	errBadRequest = &problem{http.StatusBadRequest, "bad-request",
		"تعذّرت قراءة الطلب. حاول مرة أخرى.",
		"We could not read that request. Please try again."}
)

// wrongPIN is the miss message, which says how many tries remain.
func wrongPIN(left int) *problem {
	return &problem{http.StatusBadRequest, "wrong-pin",
		fmt.Sprintf("الرمز غير صحيح. المحاولات المتبقية: %d.", left),
		fmt.Sprintf("Wrong code. Tries left: %d.", left)}
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

// limited explains a refusal by an abuse limit and when to try again.
func limited(d limits.Decision) *problem {
	wait := d.RetryAfter.Round(time.Minute)
	ar := fmt.Sprintf("%d دقيقة", int(wait.Minutes()))
	en := fmt.Sprintf("%d min", int(wait.Minutes()))
	if d.RetryAfter < 90*time.Second {
		secs := int(d.RetryAfter.Round(time.Second).Seconds())
		ar, en = fmt.Sprintf("%d ثانية", secs), fmt.Sprintf("%d s", secs)
	}
	p := &problem{Status: http.StatusTooManyRequests, Code: "limit-" + d.Reason.String()}
	switch d.Reason {
	case limits.PerNumber:
		p.AR = "أُرسلت رسائل كثيرة إلى هذا الرقم. حاول مرة أخرى بعد " + ar + "."
		p.EN = "Too many messages were sent to this number. Try again in " + en + "."
	case limits.PerDevice:
		p.AR = "طلب هذا الجهاز رسائل كثيرة. حاول مرة أخرى بعد " + ar + "."
		p.EN = "This device asked for too many messages. Try again in " + en + "."
	case limits.SiteBudget:
		p.AR = "بلغت الحديقة حدّها اليومي من الرسائل. حاول مرة أخرى بعد " + ar + "."
		p.EN = "The park has reached today's message limit. Try again in " + en + "."
	case limits.ResendGap:
		p.AR = "أرسلنا رمزاً للتو. انتظر " + ar + " قبل طلب رمز جديد."
		p.EN = "We just sent a code. Wait " + en + " before asking for a new one."
	case limits.PINBackoff:
		p.AR = "محاولات خاطئة كثيرة. حاول مرة أخرى بعد " + ar + "."
		p.EN = "Too many wrong codes. Try again in " + en + "."
	default:
		p.AR = "حاول مرة أخرى بعد " + ar + "."
		p.EN = "Please try again in " + en + "."
	}
	return p
}

// formatRate renders a rate in bit/s the way the visitor's page words it:
// "8 Mbit/s", "8 ميغابت في الثانية". Digits stay Latin in both languages,
// as everywhere else on the pages (PIN hint, data used, time left), and
// a fraction keeps one decimal ("1.5 Mbit/s"). Units are decimal, as in
// the rates staff set ("8mbit" is 8,000,000 bit/s).
func formatRate(bps uint64, t *texts) string {
	unit, div := t.Kbit, 1e3
	switch {
	case bps >= 1e9:
		unit, div = t.Gbit, 1e9
	case bps >= 1e6:
		unit, div = t.Mbit, 1e6
	}
	n := strconv.FormatFloat(math.Round(float64(bps)/div*10)/10, 'f', -1, 64)
	return n + " " + unit
}
