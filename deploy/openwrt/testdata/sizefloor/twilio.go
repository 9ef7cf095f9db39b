//go:build twilio

package main

import (
	"log/slog"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

func init() {
	uses = append(uses, func() {
		c := &client.Client{Credentials: client.NewCredentials("AC", "token")}
		c.SetAccountSid("AC")
		api := openapi.NewApiServiceWithClient(c)
		params := &openapi.CreateMessageParams{}
		params.SetTo("+97433123456")
		params.SetBody("PIN")
		_, err := api.CreateMessage(params)
		slog.Info("sms", "err", err)
	})
}
