package openwrt

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// routerTags are the build tags of every router binary: build.sh's
// router_tags, sizes.sh's and the SDK Makefile's GO_PKG_TAGS say the same
// (TestRouterTagsAgree).
const routerTags = "nethttpomithttp2"

func TestRouterTagsAgree(t *testing.T) {
	for file, want := range map[string]string{
		"build.sh": "router_tags=" + routerTags + "\n",
		"sizes.sh": "router_tags=" + routerTags + "\n",
		"Makefile": "GO_PKG_TAGS:=" + routerTags + "\n",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not set %q", file, strings.TrimSpace(want))
		}
	}
}

// routerGCFlags are the compiler flags of every router binary (build.sh's
// router_gcflags, sizes.sh's, the SDK Makefile's GOFLAGS).
var routerGCFlags = strings.Fields("-gcflags=all=-l -gcflags=runtime/...= -gcflags=internal/...= -gcflags=sync/...= -gcflags=reflect= -gcflags=strconv= -gcflags=bytes= -gcflags=strings= -gcflags=encoding/json= -gcflags=crypto/...= -gcflags=golang.org/x/crypto/...= -gcflags=vendor/golang.org/x/crypto/...= -gcflags=go.etcd.io/bbolt/...=")

func TestRouterFlagsAgree(t *testing.T) {
	flags := strings.Join(routerGCFlags, " ")
	for file, want := range map[string]string{
		"build.sh": "router_gcflags=\"" + flags + "\"\n",
		"sizes.sh": "router_gcflags=\"" + flags + "\"\n",
		"Makefile": "export GOFLAGS:=" + flags + "\n",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not set %q", file, strings.TrimSpace(want))
		}
	}
}

// notInRouterBinary are packages the router binary must not link: each
// was replaced by something smaller (issue 14), and a stray import would
// bring it back unnoticed. The tests may import them.
var notInRouterBinary = map[string]string{
	"github.com/nyaruka/phonenumbers":              "phone/ reads numbers from its generated table",
	"github.com/prometheus/client_golang":          "internal/promtext writes /metrics",
	"github.com/prometheus/common":                 "internal/promtext writes /metrics",
	"github.com/prometheus/procfs":                 "internal/promtext reads /proc/self",
	"google.golang.org/protobuf":                   "nothing in the router binary needs protobuf",
	"golang.org/x/text/language":                   "came with phonenumbers",
	"time/tzdata":                                  "internal/tz compiles each zone's rule",
	"github.com/parkwifi/parkportal/lab":           "the virtual park is built with -tags lab only",
	"net/http/pprof":                               "no profiling endpoint on a router",
	"github.com/parkwifi/parkportal/internal/fake": "test stand-ins",
}

// TestRouterBinaryDeps lists the router build's packages (mipsle, the
// router tags) and fails on any of notInRouterBinary.
func TestRouterBinaryDeps(t *testing.T) {
	cmd := exec.Command(goCommand(), "list", "-tags", routerTags, "-deps", "./cmd/parkportal")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=mipsle", "GOMIPS=softfloat")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for banned, why := range notInRouterBinary {
			if d == banned || strings.HasPrefix(d, banned+"/") {
				t.Errorf("the router binary links %s (%s): find the import with `go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/parkportal`", d, why)
			}
		}
	}
	// The lab is still there for the lab build.
	cmd = exec.Command(goCommand(), "list", "-tags", "lab,"+routerTags, "-deps", "./cmd/parkportal")
	cmd.Dir = repoRoot(t)
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list -tags lab: %v", err)
	}
	if !strings.Contains(string(out), "github.com/parkwifi/parkportal/lab\n") {
		t.Error("the -tags lab build does not link the lab package")
	}
}
