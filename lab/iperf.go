package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// IperfResult is the part of `iperf3 -J` the shaping tests read.
type IperfResult struct {
	Error     string `json:"error"`
	Intervals []struct {
		Sum struct {
			Start         float64 `json:"start"`
			End           float64 `json:"end"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Omitted       bool    `json:"omitted"`
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Bytes         float64 `json:"bytes"`
		} `json:"sum_received"`
	} `json:"end"`
}

// Rates returns the per-second receive rates in bit/s, the slow-start
// second (omitted) left out.
func (r IperfResult) Rates() []float64 {
	var out []float64
	for _, iv := range r.Intervals {
		if !iv.Sum.Omitted {
			out = append(out, iv.Sum.BitsPerSecond)
		}
	}
	return out
}

// Iperf runs `iperf3 -c server -t secs -O 1 -J` in namespace ns: a
// download when reverse (-R), an upload otherwise. It is killed if it
// runs 20 s past its time.
func Iperf(ns, server string, port int, reverse bool, secs int, extra ...string) (IperfResult, error) {
	args := []string{"netns", "exec", ns, "iperf3", "-c", server, "-p", strconv.Itoa(port),
		"-t", strconv.Itoa(secs), "-O", "1", "-i", "1", "-J", "--connect-timeout", "3000"}
	if reverse {
		args = append(args, "-R")
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+20)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	var r IperfResult
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		return r, fmt.Errorf("iperf3 %v: %v; output %q", err, jerr, out)
	}
	if r.Error != "" {
		return r, fmt.Errorf("iperf3: %s", r.Error)
	}
	return r, err
}

// StartIperfServer starts `iperf3 -s` on port in namespace ns (bound to
// bind, if not empty) and waits until it listens (at most 10 s). The
// caller stops it with the returned function.
func StartIperfServer(ns, bind string, port int) (stop func(), err error) {
	args := []string{"-s", "-p", strconv.Itoa(port), "--forceflush"}
	if bind != "" {
		args = append(args, "-B", bind)
	}
	cmd := Cmd(ns, "iperf3", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting iperf3 server: %w", err)
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening") {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case <-ready:
		return stop, nil
	case <-time.After(10 * time.Second):
		stop()
		return nil, fmt.Errorf("iperf3 server on port %d did not start", port)
	}
}
