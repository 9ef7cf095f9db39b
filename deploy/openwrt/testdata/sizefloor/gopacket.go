//go:build gopacket

package main

import (
	"log/slog"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

func init() {
	uses = append(uses, func() {
		h, err := pcapgo.NewEthernetHandle("br-lan")
		if err != nil {
			return
		}
		data, _, _ := h.ReadPacketData()
		var eth layers.Ethernet
		var arp layers.ARP
		var ip4 layers.IPv4
		var udp layers.UDP
		var dhcp layers.DHCPv4
		parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &arp, &ip4, &udp, &dhcp)
		var decoded []gopacket.LayerType
		slog.Info("frame", "err", parser.DecodeLayers(data, &decoded), "dhcp", dhcp.ClientHWAddr)
	})
}
