package lab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// LockedBuffer is a bytes.Buffer a child process writes to while a test
// reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreeRADIUSConfig says where and how a test's FreeRADIUS runs.
type FreeRADIUSConfig struct {
	// Source is the config to copy (the repository's testdata/freeradius);
	// its @STATEDIR@, @CONFDIR@, @ACCTDIR@, @SECRET@, @AUTHPORT@ and
	// @ACCTPORT@ are filled in.
	Source string
	// Root is an empty directory for the copy, state and accounting.
	Root               string
	Secret             string
	AuthPort, AcctPort int
	// Users, if set, names a file in Source used as the users file.
	Users string
	// NS is the network namespace to run in ("" for the caller's).
	NS string
}

// FreeRADIUS is a real FreeRADIUS 3.2 for tests: the radius package's
// against loopback, the end-to-end tests' in a lab namespace.
type FreeRADIUS struct {
	dir, acctDir, stateDir, ns string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *LockedBuffer
	logs   strings.Builder // output of earlier runs
}

// NewFreeRADIUS copies the config; Start runs the server.
func NewFreeRADIUS(c FreeRADIUSConfig) (*FreeRADIUS, error) {
	state := filepath.Join(c.Root, "state")
	f := &FreeRADIUS{dir: filepath.Join(c.Root, "conf"), acctDir: filepath.Join(c.Root, "acct"), stateDir: state, ns: c.NS}
	for _, d := range []string{f.acctDir, state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	repl := strings.NewReplacer(
		"@STATEDIR@", state, "@CONFDIR@", f.dir, "@ACCTDIR@", f.acctDir, "@SECRET@", c.Secret,
		"@AUTHPORT@", fmt.Sprint(c.AuthPort), "@ACCTPORT@", fmt.Sprint(c.AcctPort),
	)
	err := filepath.WalkDir(c.Source, func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.Source, p)
		dst := filepath.Join(f.dir, rel)
		if de.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		switch {
		case c.Users != "" && rel == "users":
			return nil // replaced by c.Users
		case c.Users != "" && rel == c.Users:
			dst = filepath.Join(f.dir, "users")
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, []byte(repl.Replace(string(b))), 0o600)
	})
	if err != nil {
		return nil, fmt.Errorf("copying FreeRADIUS config: %w", err)
	}
	return f, nil
}

// Start runs `freeradius -X` and waits (at most 20 s) until it is ready.
func (f *FreeRADIUS) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cmd != nil {
		return fmt.Errorf("FreeRADIUS already running")
	}
	f.out = &LockedBuffer{}
	cmd := exec.Command("freeradius", "-X", "-d", f.dir)
	if f.ns != "" {
		cmd = Cmd(f.ns, "freeradius", "-X", "-d", f.dir)
	}
	cmd.Stdout, cmd.Stderr = f.out, f.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting freeradius: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(f.out.String(), "Ready to process requests") {
		select {
		case <-exited:
			return fmt.Errorf("freeradius exited during start-up:\n%s", f.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("freeradius not ready after 20 s:\n%s", f.out.String())
		}
	}
	f.cmd, f.exited = cmd, exited
	return nil
}

// Stop kills the server, as a crash would, and waits (at most 10 s).
func (f *FreeRADIUS) Stop() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cmd == nil {
		return nil
	}
	f.cmd.Process.Kill()
	var err error
	select {
	case <-f.exited:
	case <-time.After(10 * time.Second):
		err = fmt.Errorf("freeradius pid %d did not exit", f.cmd.Process.Pid)
	}
	f.logs.WriteString(f.out.String())
	f.cmd = nil
	return err
}

// Output returns what every run of the server printed, up to the last n
// bytes.
func (f *FreeRADIUS) Output(n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.logs.String()
	if f.cmd != nil {
		s += f.out.String()
	}
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// DetailRecord is one request as FreeRADIUS's detail module wrote it.
type DetailRecord map[string][]string

// Get returns the attribute's first value, or "".
func (d DetailRecord) Get(name string) string {
	if v := d[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Detail reads every accounting record written so far.
func (f *FreeRADIUS) Detail() ([]DetailRecord, error) {
	fh, err := os.Open(filepath.Join(f.acctDir, "detail"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return ParseDetail(fh)
}

// RadAcct is one row of FreeRADIUS's SQL accounting table (radacct, in
// the schema FreeRADIUS ships), as an operator's billing reads it.
type RadAcct struct {
	SessionID       string `json:"acctsessionid"`
	UserName        string `json:"username"`
	NASIPAddress    string `json:"nasipaddress"`
	StartTime       int64  `json:"acctstarttime"`
	UpdateTime      *int64 `json:"acctupdatetime"`
	StopTime        *int64 `json:"acctstoptime"`
	SessionTime     *int64 `json:"acctsessiontime"`
	InputOctets     *int64 `json:"acctinputoctets"`
	OutputOctets    *int64 `json:"acctoutputoctets"`
	TerminateCause  string `json:"acctterminatecause"`
	CallingStation  string `json:"callingstationid"`
	FramedIPAddress string `json:"framedipaddress"`
}

// RadAcct reads radacct (written by the config's sql module) with the
// sqlite3 command; no rows before the first accounting record.
func (f *FreeRADIUS) RadAcct() ([]RadAcct, error) {
	db := filepath.Join(f.stateDir, "radacct.db")
	if _, err := os.Stat(db); os.IsNotExist(err) {
		return nil, nil
	}
	out, err := exec.Command("sqlite3", "-json", db, `SELECT acctsessionid, username, nasipaddress, acctstarttime, acctupdatetime, acctstoptime,
		acctsessiontime, acctinputoctets, acctoutputoctets, acctterminatecause, callingstationid, framedipaddress FROM radacct ORDER BY radacctid`).Output()
	if err != nil {
		return nil, fmt.Errorf("reading radacct (apt-get install -y sqlite3): %w", err)
	}
	var rows []RadAcct
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("decoding radacct rows: %w", err)
	}
	return rows, nil
}

// ParseDetail reads FreeRADIUS detail-file records.
func ParseDetail(rd io.Reader) ([]DetailRecord, error) {
	var out []DetailRecord
	var cur DetailRecord
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur != nil {
				out = append(out, cur)
			}
			cur = nil
		case !strings.HasPrefix(line, "\t"):
			cur = DetailRecord{}
		default:
			name, value, ok := strings.Cut(strings.TrimSpace(line), " = ")
			if !ok || cur == nil {
				return nil, fmt.Errorf("unexpected detail line %q", line)
			}
			cur[name] = append(cur[name], strings.Trim(value, `"`))
		}
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out, sc.Err()
}
