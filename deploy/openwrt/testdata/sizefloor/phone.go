//go:build phone

package main

import (
	"log/slog"

	"github.com/parkwifi/parkportal/phone"
)

func init() {
	uses = append(uses, func() {
		e164, err := phone.Normalize("33123456", "QA", []string{"+9743"})
		slog.Info("number", "e164", e164, "err", err)
	})
}
