package lab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/parkwifi/parkportal/store"
)

// SeedSessions writes n sessions of the lab park into a new store at path,
// as a busy day would leave them: rotating over addrs LAN addresses from
// 198.51.100.20, each with its own MAC and number, so that each Activate
// ends the previous session on its address and addrs stay active. It
// returns how many are active and ended.
func SeedSessions(path string, n, addrs int) (active, ended int, err error) {
	st, err := store.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	now := time.Now()
	for i := 0; i < n; i++ {
		id := make([]byte, 8)
		rand.Read(id)
		s := &store.Session{
			ID: hex.EncodeToString(id), MAC: net.HardwareAddr{0x02, 0x00, 0x5e, 0x03, byte(i >> 8), byte(i)},
			IP:    netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i%addrs)}),
			Phone: fmt.Sprintf("+9743%07d", 1000000+i), Site: "lab-park", Lang: "ar",
			Start: now.Add(-time.Duration(n-i) * time.Second), Expires: now.Add(4 * time.Hour),
			IdleTimeout: 20 * time.Minute, LastActive: now,
			RateDown: 8_000_000, RateUp: 8_000_000, State: store.Active,
			BytesDown: uint64(i) * 1_000_000, BytesUp: uint64(i) * 100_000,
		}
		if _, err := st.Activate(s, ""); err != nil {
			return 0, 0, fmt.Errorf("seeding session %d: %w", i, err)
		}
	}
	all, err := st.Sessions(nil)
	if err != nil {
		return 0, 0, err
	}
	for _, s := range all {
		if s.State == store.Active {
			active++
		} else {
			ended++
		}
	}
	return active, ended, nil
}
