// Package sms delivers login PINs to visitors' phones.
//
// Every implementation satisfies Sender. The daemon picks one from the
// config: the console sender (the lab default, no account needed), Twilio,
// or an operator's HTTP gateway. Message bodies carry a PIN, so no sender
// ever passes the body to the daemon's log.
package sms

import "context"

// Message is one SMS to send.
type Message struct {
	// To is the destination in E.164 form (+97433123456); callers
	// normalise it with package phone before building a Message.
	To string
	// Body is the rendered text. It contains the PIN: never log it.
	Body string
}

// Sender delivers one message. Implementations must honour ctx's deadline
// and return an *Error (see errors.go) so the portal can tell the visitor
// whether trying again makes sense.
type Sender interface {
	Send(ctx context.Context, m Message) error
}
