//go:build devwatch

package main

import (
	"context"
	"log/slog"

	"github.com/parkwifi/parkportal/devwatch"
)

// devwatch is parkportal's DHCP/ARP capture: a raw AF_PACKET socket and a
// hand-written decoder (it replaced gopacket, which cost 1.5 MiB here).
func init() {
	uses = append(uses, func() {
		w, err := devwatch.New("br-lan", nil)
		if err != nil {
			return
		}
		events := make(chan devwatch.Event, 1)
		go func() { _ = w.Run(context.Background(), events) }()
		ev := <-events
		slog.Info("device", "kind", ev.Kind.String(), "mac", ev.MAC.String(), "ip", ev.IP, "stats", w.Stats())
	})
}
