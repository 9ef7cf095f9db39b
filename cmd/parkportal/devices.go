package main

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/parkwifi/parkportal/devwatch"
	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/session"
)

// A DHCP lease prepares the device's shaping before its login (see
// session.Manager.AddressAssigned); the kernel gate must support it.
var _ session.Preparer = (*firewall.Firewall)(nil)

// watchDevices follows the LAN's DHCP and ARP traffic: sessions move with
// their device to a new address the DHCP server hands out, devices
// without a session get their shaping classes ready for their login, and
// staff see the device's name. Without CAP_NET_RAW (or with capture disabled) the
// daemon runs on, and devices that change address log in again.
func watchDevices(ctx context.Context, iface string, lan netip.Prefix, mgr *session.Manager, log *slog.Logger) {
	w, err := devwatch.New(iface, log)
	if err != nil {
		log.Warn("not watching DHCP; sessions will not follow address changes", "iface", iface, "err", err)
		return
	}
	events := make(chan devwatch.Event, 64)
	go func() {
		if err := w.Run(ctx, events); err != nil {
			log.Error("DHCP watcher stopped", "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			mgr.DeviceSeen(ev.MAC, session.DeviceInfo{Hostname: ev.Hostname, Vendor: ev.Vendor})
			if ev.Kind != devwatch.DHCPAck || !lan.Contains(ev.IP) {
				continue
			}
			if s, err := mgr.AddressAssigned(ev.MAC, ev.IP); err != nil {
				log.Error("moving session to the device's new address", "mac", ev.MAC.String(), "ip", ev.IP, "err", err)
			} else if s != nil {
				log.Info("session followed its device to a new address", "session", s.ID, "mac", ev.MAC.String(), "ip", ev.IP)
			}
		}
	}
}
