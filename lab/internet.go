package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ServeInternet runs the "internet" host's servers until ctx ends: the
// real answers of the operating systems' connectivity probes on port 80
// (so a logged-in visitor sees what a phone sees online), a page for
// everything else, and a bare TCP acceptor on 443 (whose accept proves
// that a reset a visitor sees came from the gateway, not from here).
func ServeInternet(ctx context.Context, addrs ...string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/generate_204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/gen_204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/hotspot-detect.html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>")
	})
	mux.HandleFunc("/connecttest.txt", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Microsoft Connect Test") })
	mux.HandleFunc("/ncsi.txt", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Microsoft NCSI") })
	mux.HandleFunc("/canonical.html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>`)
	})
	// /stream trickles 1 KiB every 100 ms for up to a minute: a long
	// download whose cut-off shows when a session's connections end.
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1024)
		fl, _ := w.(http.Flusher)
		for i := 0; i < 600; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from the internet\n") })

	errc := make(chan error, 3*len(addrs))
	var closers []io.Closer
	for _, a := range addrs {
		srv := &http.Server{Addr: net.JoinHostPort(a, "80"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		closers = append(closers, srv)
		go func() { errc <- srv.ListenAndServe() }()
		// UDP echo on 53 (an outside resolver) and 9999 (any UDP): a
		// reply proves a datagram got through the gateway.
		for _, port := range []string{"53", "9999"} {
			pc, err := net.ListenPacket("udp", net.JoinHostPort(a, port))
			if err != nil {
				return fmt.Errorf("listening on udp %s:%s: %w", a, port, err)
			}
			closers = append(closers, pc)
			go func() {
				buf := make([]byte, 2048)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					pc.WriteTo(buf[:n], from)
				}
			}()
		}
		l, err := net.Listen("tcp", net.JoinHostPort(a, "443"))
		if err != nil {
			return fmt.Errorf("listening on %s:443: %w", a, err)
		}
		closers = append(closers, l)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					errc <- nil
					return
				}
				c.Write([]byte("not TLS: lab internet host\n"))
				c.Close()
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			for _, c := range closers {
				c.Close()
			}
			return err
		}
	}
	for _, c := range closers {
		c.Close()
	}
	return nil
}
