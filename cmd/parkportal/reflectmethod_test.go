package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// reflectMethodRE matches a line of the linker's -dumpdep output whose
// target is a function that calls reflect's Method or MethodByName with a
// name known only at run time: "caller -> callee <ReflectMethod>".
var reflectMethodRE = regexp.MustCompile(`^(\S+)(?: <[A-Za-z]+>)* -> (\S+) <ReflectMethod>`)

// reflectMethodCulprits returns, for -dumpdep output, each function
// marked <ReflectMethod> outside package reflect itself, with who
// reaches it ("text/template.(*state).evalField, reached from
// text/template.(*state).evalFieldChain"). Package reflect's own marked
// methods (Value.Method, Value.MethodByName, the Methods iterators) only
// show up once something else made every method live, so they are not
// culprits.
func reflectMethodCulprits(dump string) []string {
	var out []string
	for _, line := range strings.Split(dump, "\n") {
		m := reflectMethodRE.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(m[2], "reflect.") {
			continue
		}
		c := m[2] + ", reached from " + m[1]
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// outsideOurScope are dependencies on their way out of the router binary
// (issue 14: the Prometheus client and phonenumbers' protobuf runtime,
// gopacket) or not ours to change (twilio-go). If one of them is the
// culprit the guard says so and names it instead of failing: it is then
// that work's to remove.
var outsideOurScope = []string{"github.com/prometheus/", "google.golang.org/protobuf/", "github.com/nyaruka/phonenumbers",
	"github.com/google/gopacket", "github.com/twilio/twilio-go"}

// TestNoReflectMethodInRouterBinary links the router binary (linux/mipsle)
// with -dumpdep and fails if any function that calls reflect's
// MethodByName or Method with a run-time name is reachable. One such call
// makes the linker keep every exported method of every type that reaches
// an interface: html/template's executor did, costing 2.5 MiB of the
// mipsel binary, which is why the pages run on internal/tmpl. A
// template func is the way to give a page a computed value.
func TestNoReflectMethodInRouterBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("links the router binary; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out := filepath.Join(t.TempDir(), "parkportal")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-dumpdep", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=mipsle", "GOMIPS=softfloat")
	dump, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("building the router binary: %v\n%s", err, tail(dump, 2000))
	}
	if !strings.Contains(string(dump), " -> ") {
		t.Fatalf("the linker printed no dependency dump; has -dumpdep changed?\n%s", tail(dump, 2000))
	}
	for _, c := range reflectMethodCulprits(string(dump)) {
		if i := slices.IndexFunc(outsideOurScope, func(p string) bool { return strings.HasPrefix(c, p) }); i >= 0 {
			t.Logf("ReflectMethod caller in a dependency being removed or not ours (%s): %s", outsideOurScope[i], c)
			continue
		}
		t.Errorf("ReflectMethod caller reachable in the router binary: %s.\n"+
			"It makes the linker keep every exported method of every type; give the value to a template (or other reflection) as a func instead.", c)
	}
}

// TestReflectMethodCulprits checks the dump reading on lines the Go 1.26
// linker printed for the binary that still ran html/template.
func TestReflectMethodCulprits(t *testing.T) {
	dump := `text/template.(*state).evalFieldChain -> text/template.(*state).evalField <ReflectMethod>
text/template.(*state).evalField <ReflectMethod> -> reflect.Value.MethodByName
type:reflect.Value <UsedInIface> -> reflect.(*Value).MethodByName <ReflectMethod>
reflect.Value.Methods -> reflect.Value.Methods.func1 <ReflectMethod>
main.main -> fmt.Println
`
	got := reflectMethodCulprits(dump)
	want := []string{"text/template.(*state).evalField, reached from text/template.(*state).evalFieldChain"}
	if !slices.Equal(got, want) {
		t.Errorf("culprits = %q, want %q", got, want)
	}
	if got := reflectMethodCulprits("main.main -> fmt.Println\n"); len(got) != 0 {
		t.Errorf("a clean dump has culprits %q", got)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
