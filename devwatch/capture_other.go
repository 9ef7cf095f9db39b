//go:build !linux

package devwatch

import (
	"errors"
	"log/slog"
)

// New fails off Linux: the capture is an AF_PACKET socket. Decode works
// everywhere.
func New(iface string, logger *slog.Logger) (*Watcher, error) {
	return nil, errors.New("devwatch: capturing needs Linux (AF_PACKET)")
}
