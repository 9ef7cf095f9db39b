package settings

import (
	"encoding/json"
	"testing"
)

// FuzzSettingsJSON feeds the decoder the admin API and profile import
// use: it must never panic, and whatever it accepts and validates must
// survive a round trip unchanged (so an export can always be imported).
func FuzzSettingsJSON(f *testing.F) {
	def, _ := json.Marshal(defaults())
	f.Add(def)
	f.Add([]byte(`{"rate_down":"4mbit","idle_timeout":600}`))
	f.Add([]byte(`{"walled_garden":["203.0.113.0/28"],"radius":{"servers":["192.0.2.5:1812"]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeJSON(b)
		if err != nil {
			return
		}
		if s.Validate() != nil {
			return
		}
		enc, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("valid settings do not encode: %v", err)
		}
		back, err := DecodeJSON(enc)
		if err != nil {
			t.Fatalf("encoded settings do not decode: %v\n%s", err, enc)
		}
		enc2, _ := json.Marshal(back)
		if string(enc) != string(enc2) {
			t.Fatalf("round trip changed settings:\n%s\n%s", enc, enc2)
		}
		if _, err := Patch(s, b); err != nil {
			// A full document is also a valid patch of anything.
			t.Fatalf("full document rejected as patch: %v", err)
		}
	})
}
