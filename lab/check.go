package lab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Step is one line of the scripted visitor's report.
type Step struct {
	Name   string
	OK     bool
	Detail string
}

// Checker drives real curl requests from the park's visitor namespaces
// through the gateway, the way a phone would.
type Checker struct {
	Park      *Park
	PortalURL string // e.g. http://198.51.100.1:2050/
	Outbox    string // the console SMS outbox file
	Phone     string // a number the site accepts, as a visitor types it
	Out       io.Writer
}

// HTTPResult is what one curl request returned.
type HTTPResult struct {
	Code     int
	Location string
	Body     string
	Exit     int // curl's exit code: 7 refused/reset, 28 timeout
	Took     time.Duration
}

// Curl runs curl in namespace ns. Extra args come before the URL.
func Curl(ns string, timeout time.Duration, url string, extra ...string) HTTPResult {
	args := []string{"-sS", "-o", "-", "-w", "\n%{http_code} %{redirect_url}", "--max-time", strconv.FormatFloat(timeout.Seconds(), 'f', 1, 64)}
	args = append(args, extra...)
	args = append(args, url)
	start := time.Now()
	out, err := Cmd(ns, "curl", args...).Output()
	r := HTTPResult{Took: time.Since(start)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Exit = ee.ExitCode()
	} else if err != nil {
		r.Exit = -1
	}
	s := string(out)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		r.Body = s[:i]
		tail := strings.SplitN(s[i+1:], " ", 2)
		r.Code, _ = strconv.Atoi(tail[0])
		if len(tail) == 2 {
			r.Location = strings.TrimSpace(tail[1])
		}
	}
	return r
}

// CookieJar returns curl flags that keep cookies in a per-visitor file.
func CookieJar(ns string) []string {
	f := fmt.Sprintf("%s/pp-cookies-%s.txt", os.TempDir(), ns)
	return []string{"-b", f, "-c", f}
}

// PostForm sends a form as the visitor's browser would (same-origin).
func PostForm(ns, url string, form map[string]string) HTTPResult {
	return PostFormWith(ns, CookieJar(ns), url, form)
}

// PostFormWith is PostForm with the sender's curl flags (a Device's
// CurlArgs, say).
func PostFormWith(ns string, client []string, url string, form map[string]string) HTTPResult {
	args := append(append([]string{}, client...), "-H", "Origin: "+strings.TrimSuffix(originOf(url), "/"))
	for k, v := range form {
		args = append(args, "--data-urlencode", k+"="+v)
	}
	return Curl(ns, 25*time.Second, url, args...)
}

func originOf(url string) string {
	i := strings.Index(url, "://")
	if i < 0 {
		return url
	}
	j := strings.IndexByte(url[i+3:], '/')
	if j < 0 {
		return url
	}
	return url[:i+3+j]
}

var pinRE = regexp.MustCompile(`\b(\d{6})\b`)

// LastPIN returns the PIN of the newest outbox message to e164.
func LastPIN(outbox, e164 string) (string, error) {
	m, err := LastSMS(outbox, e164)
	if err != nil {
		return "", err
	}
	return m.PIN, nil
}

// SMS is one message in the console sender's outbox.
type SMS struct {
	To, Body string
	PIN      string // the 6-digit code in Body
}

// LastSMS returns the newest outbox message to e164 that carries a PIN.
func LastSMS(outbox, e164 string) (SMS, error) {
	f, err := os.Open(outbox)
	if err != nil {
		return SMS{}, err
	}
	defer f.Close()
	var last SMS
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct{ To, Body string }
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.To == e164 {
			if p := pinRE.FindStringSubmatch(m.Body); p != nil {
				last = SMS{To: m.To, Body: m.Body, PIN: p[1]}
			}
		}
	}
	if last.PIN == "" {
		return SMS{}, fmt.Errorf("no SMS to %s in %s", e164, outbox)
	}
	return last, nil
}

func problemCode(body string) string {
	m := regexp.MustCompile(`data-code="([a-z-]+)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// Run walks a visitor through the whole captive loop and reports a line
// per step. It returns the steps and how long it took from the accepted
// PIN's answer to the first successful request to the internet host.
func (c *Checker) Run() ([]Step, time.Duration) {
	var steps []Step
	add := func(name string, ok bool, format string, args ...any) {
		st := Step{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)}
		steps = append(steps, st)
		if c.Out != nil {
			mark := "PASS"
			if !ok {
				mark = "FAIL"
			}
			fmt.Fprintf(c.Out, "%s  %-58s %s\n", mark, name, st.Detail)
		}
	}
	v1, v2 := c.Park.Visitors[0], c.Park.Visitors[len(c.Park.Visitors)-1]
	inet := "http://" + InternetIP.String()
	os.Remove(fmt.Sprintf("%s/pp-cookies-%s.txt", os.TempDir(), v1.NS))

	for _, probe := range []string{"/generate_204", "/hotspot-detect.html", "/connecttest.txt", "/canonical.html"} {
		r := Curl(v1.NS, 5*time.Second, inet+probe)
		add("2. probe "+probe+" redirects to the splash page", r.Code == 302 && r.Location == c.PortalURL,
			"got %d → %q", r.Code, r.Location)
	}
	r := Curl(v1.NS, 5*time.Second, "https://"+InternetIP.String()+"/", "-k")
	add("2. HTTPS to the outside is reset at once", r.Exit == 7 && r.Took < 2*time.Second, "curl exit %d after %s", r.Exit, r.Took.Round(time.Millisecond))
	r = Curl(v1.NS, 2*time.Second, inet+":8080/")
	add("2. other traffic to the outside is dropped", r.Exit == 28, "curl exit %d (28 = timed out)", r.Exit)
	r = Curl(v1.NS, 5*time.Second, c.PortalURL, append(CookieJar(v1.NS), "-H", "Accept-Language: ar")...)
	add("3. splash page is Arabic, right-to-left, with the park's name", r.Code == 200 && strings.Contains(r.Body, `dir="rtl"`) && strings.Contains(r.Body, `name="phone"`),
		"got %d, %d bytes", r.Code, len(r.Body))
	r = Curl(v1.NS, 5*time.Second, c.PortalURL+"?lang=en", CookieJar(v1.NS)...)
	add("3. English switch", r.Code == 200 && strings.Contains(r.Body, `dir="ltr"`) && strings.Contains(r.Body, "Mobile number"), "got %d", r.Code)
	r = PostForm(v1.NS, c.PortalURL+"sms", map[string]string{"phone": "12ab", "lang": "ar"})
	add("5. malformed number refused in both languages", r.Code == 400 && problemCode(r.Body) == "malformed-number" && strings.Contains(r.Body, "not a valid"),
		"got %d %s", r.Code, problemCode(r.Body))
	r = PostForm(v1.NS, c.PortalURL+"sms", map[string]string{"phone": "+44 7400 123456", "lang": "ar"})
	add("5. number outside the site's allowlist refused", r.Code == 403 && problemCode(r.Body) == "number-not-allowed", "got %d %s", r.Code, problemCode(r.Body))

	r = PostForm(v1.NS, c.PortalURL+"sms", map[string]string{"phone": c.Phone, "lang": "ar"})
	e164 := "+974" + strings.TrimPrefix(strings.ReplaceAll(c.Phone, " ", ""), "+974")
	msg, err := LastSMS(c.Outbox, e164)
	add("3. number accepted, PIN sent by SMS", r.Code == 303 && err == nil, "%s", smsStep(r, msg, c.Outbox, err))
	if err != nil {
		return steps, 0
	}
	code := msg.PIN
	r = Curl(v1.NS, 5*time.Second, c.PortalURL, CookieJar(v1.NS)...)
	add("3. page now asks for the PIN", r.Code == 200 && strings.Contains(r.Body, `autocomplete="one-time-code"`), "got %d", r.Code)
	wrong := fmt.Sprintf("%06d", (mustAtoi(code)+1)%1_000_000)
	r = PostForm(v1.NS, c.PortalURL+"pin", map[string]string{"pin": wrong})
	add("5. wrong PIN refused, tries counted", r.Code == 400 && problemCode(r.Body) == "wrong-pin", "got %d %s", r.Code, problemCode(r.Body))
	r = PostForm(v1.NS, c.PortalURL+"pin", map[string]string{"pin": "12"})
	add("5. malformed PIN refused", r.Code == 400 && problemCode(r.Body) == "malformed-pin", "got %d %s", r.Code, problemCode(r.Body))

	r = PostForm(v1.NS, c.PortalURL+"pin", map[string]string{"pin": code})
	accepted := time.Now()
	add("4. right PIN: connected, with the time remaining", r.Code == 200 && strings.Contains(r.Body, `id="connected"`) && strings.Contains(r.Body, "data-seconds"),
		"got %d", r.Code)
	var flow time.Duration
	for i := 0; i < 50; i++ {
		if rr := Curl(v1.NS, 2*time.Second, inet+"/generate_204"); rr.Code == 204 {
			flow = time.Since(accepted)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	add("4. visitor's traffic flows to the internet", flow > 0, "first 204 from the internet host %s after the PIN was accepted", flow.Round(time.Millisecond))
	r = Curl(v2.NS, 5*time.Second, inet+"/generate_204")
	add("4. another visitor on the LAN stays blocked", r.Code == 302, "got %d", r.Code)
	r = PostForm(v1.NS, c.PortalURL+"pin", map[string]string{"pin": code})
	add("5. reused PIN refused", r.Code == 400 && problemCode(r.Body) == "no-pending-pin", "got %d %s", r.Code, problemCode(r.Body))
	r = Curl(c.Park.Gateway, 5*time.Second, c.PortalURL)
	add("5. device whose MAC the gateway cannot see gets a clear message", r.Code == 400 && problemCode(r.Body) == "device-not-visible", "got %d %s", r.Code, problemCode(r.Body))
	r = PostForm(v1.NS, c.PortalURL+"logout", map[string]string{"lang": "en"})
	rr := Curl(v1.NS, 5*time.Second, inet+"/generate_204")
	add("logout: visitor is captive again", r.Code == 200 && rr.Code == 302, "logout %d, then probe %d", r.Code, rr.Code)
	return steps, flow
}

// smsStep says what happened when the visitor asked for a PIN: the
// portal's answer, and where the SMS went with its PIN (the lab's
// "phone" is the console sender's outbox), or why there is none.
func smsStep(r HTTPResult, m SMS, outbox string, err error) string {
	answer := fmt.Sprintf("HTTP %d", r.Code)
	switch {
	case r.Code == 303:
		answer += " → " + r.Location
	case r.Exit != 0:
		answer += fmt.Sprintf(" (curl exit %d)", r.Exit)
	case problemCode(r.Body) != "":
		answer += " " + problemCode(r.Body)
	}
	if err != nil {
		return answer + "; " + err.Error()
	}
	return fmt.Sprintf("%s; SMS to %s in %s, PIN %s", answer, m.To, outbox, m.PIN)
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Login walks a device through the SMS login as a phone would: it posts
// the number (a Qatari number as typed, e.g. "33123456"), reads the PIN
// the console sender wrote to outbox, and posts it. client are the
// sender's curl flags (cookie jar, interface). It returns the PIN answer
// and an error naming the step that went wrong; nil means "connected".
func Login(ns string, client []string, portalURL, outbox, number string) (HTTPResult, error) {
	r := PostFormWith(ns, client, portalURL+"sms", map[string]string{"phone": number})
	if r.Code != 303 {
		return r, fmt.Errorf("SMS request got %d %s", r.Code, problemCode(r.Body))
	}
	pin, err := LastPIN(outbox, "+974"+number)
	if err != nil {
		return r, err
	}
	r = PostFormWith(ns, client, portalURL+"pin", map[string]string{"pin": pin})
	if r.Code != 200 || !strings.Contains(r.Body, `id="connected"`) {
		return r, fmt.Errorf("PIN got %d %s", r.Code, problemCode(r.Body))
	}
	return r, nil
}
