//go:build lab

// The virtual park is for development machines and the tests, not
// routers: this file is built only with -tags lab (scripts/lab.sh and the
// e2e tests build that way); nolab.go stands in for it otherwise.

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/lab"
)

const labDir = "/tmp/parkportal-lab"

// cmdLab builds the virtual park, runs the real daemon in its gateway and
// either waits for Ctrl-C (explore by hand) or runs the scripted visitor.
func cmdLab(args []string) error {
	fs := newFlags("lab", "lab [--check] [--visitors N]   build a virtual park in network namespaces and run the daemon in it (root)")
	check := fs.Bool("check", false, "run a scripted visitor through the captive loop, print a line per step, then clean up")
	visitors := fs.Int("visitors", 2, "number of visitor namespaces")
	if err := fs.parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("lab: needs root (it creates network namespaces and firewall rules)")
	}
	for _, tool := range []string{"ip", "iptables", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("lab: %s not found; on Debian: apt-get install -y iproute2 iptables curl", tool)
		}
	}
	cfg, err := config.Parse(config.LabDefault)
	if err != nil {
		return err
	}
	// A lab starts from an empty store every time.
	os.RemoveAll(labDir)
	if err := os.MkdirAll(labDir, 0o700); err != nil {
		return err
	}
	cfgPath := filepath.Join(labDir, "parkportal.uci")
	if err := os.WriteFile(cfgPath, []byte(config.LabDefault), 0o600); err != nil {
		return err
	}

	park, err := lab.Build("pplab", *visitors)
	if err != nil {
		return err
	}
	defer func() {
		if err := park.Destroy(); err != nil {
			fmt.Fprintln(os.Stderr, "lab: cleanup:", err)
		} else {
			fmt.Println("lab: removed every namespace, link, chain and set it made")
		}
	}()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	inet := lab.Cmd(park.Internet, self, "lab-internet")
	inet.Stderr = os.Stderr
	if err := inet.Start(); err != nil {
		return fmt.Errorf("starting the internet host: %w", err)
	}
	defer stopProcess(inet)

	daemon := lab.Cmd(park.Gateway, self, "serve", "--config", cfgPath)
	daemon.Stdout, daemon.Stderr = os.Stdout, os.Stderr
	if err := daemon.Start(); err != nil {
		return fmt.Errorf("starting parkportal in the gateway: %w", err)
	}
	defer stopProcess(daemon)

	portalURL := fmt.Sprintf("http://%s:%d/", cfg.GatewayIP, cfg.PortalPort)
	if err := waitForPortal(park, portalURL); err != nil {
		return err
	}

	if *check {
		ch := &lab.Checker{Park: park, PortalURL: portalURL, Outbox: cfg.SMS["outbox"], Phone: "33123456", Out: os.Stdout}
		steps, flow := ch.Run()
		failed := 0
		for _, s := range steps {
			if !s.OK {
				failed++
			}
		}
		fmt.Printf("\n%d passed, %d failed\n", len(steps)-failed, failed)
		fmt.Printf("PIN accepted → traffic flows: %s\n", flow.Round(time.Millisecond))
		if failed > 0 {
			return fmt.Errorf("lab check: %d steps failed", failed)
		}
		return nil
	}

	v := park.Visitors[0]
	fmt.Printf(`
The virtual park is up. parkportal runs in namespace %[1]s (LAN %[2]s, portal %[3]s).
Act as visitor %[4]s (%[5]s, MAC %[6]s):

  ip netns exec %[4]s curl -i http://%[7]s/generate_204        # redirected to the splash page
  ip netns exec %[4]s curl -s %[3]s                            # the splash page (Arabic)
  ip netns exec %[4]s curl -s -o /tmp/v1.html -w 'HTTP %%{http_code} %%{redirect_url}\n' -c /tmp/v1 -b /tmp/v1 -H 'Origin: %[8]s' -d phone=33123456 %[3]ssms
        # HTTP 303 %[3]s?lang=ar: the PIN went out; anything else: grep -A2 problem /tmp/v1.html says why
  tail -n 1 %[9]s | cut -c1-200                                 # the SMS "phone": {"to":"+97433123456","body":"رمزك 123456 …"}
        # (the daemon also prints each SMS here: 📱 SMS to +974…)
  ip netns exec %[4]s curl -s -c /tmp/v1 -b /tmp/v1 -H 'Origin: %[8]s' -d pin=<PIN> %[3]spin | grep -o 'You are online\|أنت متصل\|data-code="[a-z-]*"'
  ip netns exec %[4]s curl -i http://%[7]s/generate_204        # 204: you are online

Other visitors: %[10]s. The internet host is %[7]s (namespace %[11]s).
Ctrl-C stops the daemon and removes the park.
`, park.Gateway, cfg.LANPrefix, portalURL, v.NS, v.IP, v.MAC, lab.InternetIP, strings.TrimSuffix(portalURL, "/"),
		cfg.SMS["outbox"], visitorNames(park), park.Internet)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- daemon.Wait() }()
	select {
	case <-ctx.Done():
		fmt.Println("\nlab: stopping")
	case err := <-done:
		return fmt.Errorf("parkportal exited: %v", err)
	}
	return nil
}

func visitorNames(p *lab.Park) string {
	var names []string
	for _, v := range p.Visitors[1:] {
		names = append(names, v.NS+" ("+v.IP.String()+")")
	}
	return strings.Join(names, ", ")
}

// waitForPortal polls the splash page from the first visitor until the
// daemon answers (bounded: 100 tries, 10 s).
func waitForPortal(p *lab.Park, url string) error {
	for i := 0; i < 100; i++ {
		if r := lab.Curl(p.Visitors[0].NS, time.Second, url); r.Code == 200 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("lab: the portal did not answer at %s within 10 s", url)
}

// stopProcess asks a child to stop (SIGTERM, so the daemon tears down its
// firewall state) and kills it if it does not within 5 s.
func stopProcess(c *exec.Cmd) {
	if c.Process == nil {
		return
	}
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
		<-done
	}
}

func cmdLabInternet(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return lab.ServeInternet(ctx, lab.InternetIP.String(), lab.Internet6.String())
}
