//go:build phonenumbers

package main

import (
	"log/slog"

	"github.com/nyaruka/phonenumbers"
)

func init() {
	uses = append(uses, func() {
		n, err := phonenumbers.Parse("33123456", "QA")
		if err == nil && phonenumbers.IsValidNumber(n) {
			slog.Info("number", "e164", phonenumbers.Format(n, phonenumbers.E164), "type", phonenumbers.GetNumberType(n))
		}
	})
}
