package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/radius"
)

// TestAuthorizeFailPolicyWithSilentServer: a RADIUS server that takes
// requests and never answers (the usual way one fails: a dead process
// behind a live host, a firewall dropping UDP) must lead to the site's
// fail policy within the portal's wait, not to a refusal after it.
func TestAuthorizeFailPolicyWithSilentServer(t *testing.T) {
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	mac := net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 1}
	ip := netip.MustParseAddr("198.51.100.10")
	for _, failOpen := range []bool{true, false} {
		n := &nas{log: slog.New(slog.DiscardHandler), secret: "testing123", info: radius.NAS{Identifier: "lab-park"}}
		if err := n.applyPolicy(true, []string{silent.LocalAddr().String()}, failOpen); err != nil {
			t.Fatal(err)
		}
		// The portal bounds the wait (15 s in portal.handlePIN); here 1 s,
		// shorter than the client's own 5 s per server, so the caller's
		// deadline is what ends the wait.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		grant, err := n.Authorize(ctx, "+97433123456", mac, ip)
		cancel()
		took := time.Since(start)
		if failOpen && (err != nil || grant != nil) {
			t.Errorf("fail open: grant %+v, err %v; want the site's defaults (nil, nil)", grant, err)
		}
		if !failOpen && err == nil {
			t.Error("fail closed: the visitor was let in without an answer")
		}
		if took > 2*time.Second {
			t.Errorf("fail open=%v: the visitor waited %v for a silent server", failOpen, took)
		}
	}
}
