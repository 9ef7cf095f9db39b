//go:build netlink

package main

import (
	"log/slog"

	"github.com/vishvananda/netlink"
)

func init() {
	uses = append(uses, func() {
		link, err := netlink.LinkByName("br-lan")
		if err != nil {
			return
		}
		attrs := netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
		slog.Info("tc",
			"qdisc", netlink.QdiscReplace(netlink.NewHtb(attrs)),
			"class", netlink.ClassReplace(netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: link.Attrs().Index, Parent: attrs.Handle, Handle: netlink.MakeHandle(1, 2)}, netlink.HtbClassAttrs{Rate: 8e6})),
			"filter", netlink.FilterReplace(&netlink.U32{FilterAttrs: netlink.FilterAttrs{LinkIndex: link.Attrs().Index, Parent: attrs.Handle}}),
			"ipset", netlink.IpsetAdd("pp-allow", &netlink.IPSetEntry{}),
		)
		_, _ = netlink.NeighList(link.Attrs().Index, 0)
		_, _ = netlink.ConntrackDeleteFilters(netlink.ConntrackTable, 2)
	})
}
