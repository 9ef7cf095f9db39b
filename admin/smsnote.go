package admin

import (
	"strconv"
	"time"

	"github.com/parkwifi/parkportal/i18n"
	"github.com/parkwifi/parkportal/settings"
	"github.com/parkwifi/parkportal/sms"
)

// smsNote is what the settings page says under a PIN message: how many
// SMS segments it takes with the park's name, in which encoding, and a
// warning when that is more than one (every PIN then costs as many SMS).
type smsNote struct {
	Info    string
	Warning string
	// NotGSM explains why an English message is UCS-2 (70 characters a
	// segment instead of 160): the character that forced it.
	NotGSM string
}

// smsNotes measures the PIN message in each language as the form shows
// it: rendered with a 6-digit PIN, the park's name in that language and
// the PIN lifetime, as a visitor would receive it.
func smsNotes(lang string, v map[string]string) map[string]*smsNote {
	ttl := 5 * time.Minute
	if d, err := settings.ParseDuration(v["pin_ttl"]); err == nil && d > 0 {
		ttl = d.D()
	}
	notes := map[string]*smsNote{}
	for _, msgLang := range []string{"ar", "en"} {
		tmpl := v["sms_templates."+msgLang]
		if tmpl == "" {
			continue
		}
		m := sms.MeasureText(sms.Render(tmpl, "000000", ttl, msgLang, v["name_"+msgLang]))
		n := &smsNote{Info: i18n.Fill(messages.N(lang, "sms.segments", m.Segments), m.Encoding(), strconv.Itoa(m.Units), strconv.Itoa(m.Capacity))}
		if m.Segments > 1 {
			key := "sms.warn.long"
			if sms.Segments(sms.Render(tmpl, "000000", ttl, msgLang, "")) == 1 {
				key = "sms.warn.name"
			}
			n.Warning = messages.N(lang, key, m.Segments)
		}
		if msgLang == "en" && m.UCS2 {
			n.NotGSM = i18n.Fill(tr(lang, "sms.notgsm"), string(m.NotGSM))
		}
		notes[msgLang] = n
	}
	return notes
}
