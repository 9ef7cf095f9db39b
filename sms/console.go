package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Console is the lab's SMS "network": it prints each message to a writer
// (the terminal) and appends it as one JSON line to an outbox file, so a
// person or a test can read the PIN the visitor would have received.
//
// It writes to its own writer rather than to the daemon's log on purpose:
// the outbox stands in for the visitor's phone, and log files must never
// hold PINs.
type Console struct {
	mu     sync.Mutex
	out    io.Writer // may be nil
	outbox string    // may be empty
	now    func() time.Time
}

// NewConsole returns a Console that prints to out (nil for none) and
// appends to the file at outbox ("" for none).
func NewConsole(out io.Writer, outbox string) *Console {
	return &Console{out: out, outbox: outbox, now: time.Now}
}

// OutboxLine is the JSON shape of one line in the outbox file.
type OutboxLine struct {
	Time time.Time `json:"time"`
	To   string    `json:"to"`
	Body string    `json:"body"`
}

// Send prints and records m.
func (c *Console) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out != nil {
		fmt.Fprintf(c.out, "📱 SMS to %s: %s\n", m.To, m.Body)
	}
	if c.outbox == "" {
		return nil
	}
	line, err := json.Marshal(OutboxLine{Time: c.now().UTC(), To: m.To, Body: m.Body})
	if err != nil {
		return fmt.Errorf("encoding outbox line: %w", err)
	}
	f, err := os.OpenFile(c.outbox, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening SMS outbox: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing SMS outbox: %w", err)
	}
	return f.Close()
}
