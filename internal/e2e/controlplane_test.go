package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
)

// jwtLike matches a JWT (three base64url parts, the first a JSON header).
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

func TestApplyStartsTheControlPlaneFirstAndWaitsForRegistration(t *testing.T) {
	f := newFixture(t)
	sdk := testutil.BuildBinaries(t, testutil.WithSDKComponent()).SDKComponent
	// source.reg blocks at start until the control plane answers (as SDK
	// components do) and registers with its token; sink.plain does not
	// register; sink.env says so by ENABLE_FLOWCTL.
	f.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "reg" {
  command  = [%q]
  register = true
  env = {
    TC_START_DELAY             = "300ms"
    FLOWCTL_HEARTBEAT_INTERVAL = "1s"
  }
  health {
    http = "/health"
  }
}

sink "plain" {
  command = [%q]
  inputs  = [source.reg]
  health {
    http = "/health"
  }
}

sink "env" {
  command = [%q]
  inputs  = [source.reg]
  env = {
    ENABLE_FLOWCTL = "true"
  }
}
`, f.name, sdk, f.tc, sdk))

	r := f.apply()
	if !strings.Contains(r.out, "Control plane started in the background") {
		t.Fatalf("apply did not say it started the control plane:\n%s", r)
	}
	cp := f.serveRecord()
	if cp == nil || !cp.Alive() {
		t.Fatalf("no live control plane recorded after apply: %+v", cp)
	}
	recs := f.records()
	for addr, rec := range recs {
		if !rec.StartedAt.After(cp.StartedAt) {
			t.Errorf("%s started at %s, before the control plane (%s)", addr, rec.StartedAt, cp.StartedAt)
		}
		if rec.Status != state.StatusRunning {
			t.Errorf("%s: status %s", addr, rec.Status)
		}
	}

	// Ready means registered: the registrations are there, attributed by
	// token to the current instances.
	st, err := state.Open(f.statePath(), "")
	if err != nil {
		t.Fatal(err)
	}
	regs, err := controlplane.ReadRegistrations(st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	byComp := map[string]controlplane.Registration{}
	for _, reg := range regs {
		byComp[reg.Component] = reg
	}
	for _, addr := range []string{"source.reg", "sink.env"} {
		reg, ok := byComp[addr]
		if !ok || reg.AttributedBy != controlplane.ByToken || reg.Auth != controlplane.AuthToken || reg.InstanceID != recs[addr].InstanceID {
			t.Errorf("%s: registration %+v (instance in state %s)", addr, reg, recs[addr].InstanceID)
		}
	}
	if _, ok := byComp["sink.plain"]; ok {
		t.Errorf("sink.plain registered: %+v", byComp["sink.plain"])
	}

	// Every component got a token; none appears in what flowctl prints or
	// keeps in state.
	env, err := os.ReadFile(f.path(".flowctl/logs/source.reg.log"))
	if err != nil {
		t.Fatal(err)
	}
	_ = env
	for _, out := range []string{
		r.out,
		f.must(0, "status", "-o", "json").out,
		f.must(0, "status").out,
		f.must(0, "state", "show", "source.reg", "-json").out,
		f.must(0, "plan").out,
		f.must(0, "history", "-json").out,
	} {
		if jwtLike.MatchString(out) {
			t.Fatalf("a token appears in flowctl's output:\n%s", out)
		}
	}
	var s struct {
		Components []struct {
			Address string `json:"address"`
			Auth    string `json:"auth"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(f.must(0, "status", "-o", "json").out), &s); err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Components {
		if c.Address == "source.reg" && c.Auth != "token" {
			t.Errorf("status: %+v", c)
		}
	}

	// A second apply with nothing to do starts no second control plane.
	f.must(0, "apply", "-auto-approve")
	if again := f.serveRecord(); again == nil || again.Process != cp.Process {
		t.Fatalf("control plane changed: %+v -> %+v", cp, again)
	}

	// Destroy leaves nothing, the control plane included.
	f.must(0, "destroy", "-auto-approve")
	if cp.Alive() {
		t.Fatalf("the control plane (pid %d) still runs after destroy", cp.Process.PID)
	}
}

func TestApplyRefusesAControlPlaneThatDoesNotAnswer(t *testing.T) {
	f := newFixture(t)
	f.writePipeline([]comp{{kind: "source", id: "a"}})
	port := freeHostPort(t)
	r := f.run("apply", "-auto-approve", "--control-plane", fmt.Sprintf("127.0.0.1:%d", port))
	if r.code != 1 || !strings.Contains(r.err, "does not answer") {
		t.Fatalf("want a clear refusal:\n%s", r)
	}
	if recs := f.records(); len(recs) != 0 {
		t.Fatalf("state changed: %v", recs)
	}
	f.assertNoProcesses()
}
