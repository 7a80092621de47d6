package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil/listeners"
	"github.com/flowctl/flowctl/pkg/contract"
)

// theSecret is the sensitive value of the pipelines below: the one issue
// #16 recovered from a spec hash.
const theSecret = "SUPERSECRET-abc123"

// secretPipeline is one process component whose API_KEY comes from a
// sensitive variable set to secret, plus more.
func secretPipeline(f *fixture, secret string, more ...comp) string {
	cs := append([]comp{{kind: "source", id: "app", env: map[string]string{"API_KEY": "${var.api_key}", "MODE": "live"}}}, more...)
	return f.hcl(cs) + "\nvariable \"api_key\" {\n  default   = \"" + secret + "\"\n  sensitive = true\n}\n"
}

// desiredApp is source.app as the pipeline file describes it now.
func desiredApp(t *testing.T, f *fixture) *config.Component {
	t.Helper()
	p, diags := config.Load(f.path("pipeline.hcl"), config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p.Component("source.app")
}

// guessHash is what anyone who reads a plan or a state dump can compute:
// the redacted spec with a candidate filled in, hashed as an unkeyed spec
// hash is.
func guessHash(c *config.Component, candidate string) string {
	r := c.Redacted()
	for k, v := range r.Env {
		if v.Sensitive {
			v.Value = candidate
			r.Env[k] = v
		}
	}
	sum := sha256.Sum256(r.CanonicalJSON())
	return hex.EncodeToString(sum[:])
}

// runRecords are the process executor's run records (what it reads back
// as the object's spec hash), by path.
func runRecords(t *testing.T, f *fixture) map[string]map[string]any {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(f.runDir(), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[p] = m
	}
	return out
}

func TestNoSpecHashShownAnywhereLetsASensitiveValueBeGuessed(t *testing.T) {
	f := newFixture(t)
	f.write("pipeline.hcl", secretPipeline(f, theSecret))
	// A plan with no state yet hashes with a key of its own (it writes
	// nothing); after apply, plans use the state's.
	first := f.plan()
	f.apply()
	planned := f.plan()
	c := desiredApp(t, f)
	guessed := guessHash(c, theSecret)
	if guessed != c.UnkeyedSpecHash() {
		t.Fatal("filling the secret into the redacted spec does not give the unkeyed hash: the guess proves nothing")
	}

	rec := f.records()["source.app"]
	shown := map[string]string{"state record": rec.SpecHash}
	for _, ch := range first.Changes {
		if ch.Address == "source.app" && (ch.SpecHash == "" || ch.SpecHash == guessed) {
			t.Errorf("the first plan's spec hash %q is empty or guessable", ch.SpecHash)
		}
	}
	for _, ch := range planned.Changes {
		if ch.Address == "source.app" {
			shown["plan -json"] = ch.SpecHash
		}
	}
	var dump struct {
		SpecHash string `json:"spec_hash"`
	}
	r := f.must(0, "state", "show", "source.app", "-json")
	if err := json.Unmarshal([]byte(r.out), &dump); err != nil {
		t.Fatalf("decode state show -json: %v\n%s", err, r)
	}
	shown["state show -json"] = dump.SpecHash
	env, err := procinfo.Environ(childOf(rec.Handle).PID)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, contract.EnvSpecHash+"="); ok {
			shown[contract.EnvSpecHash] = v
		}
	}
	for p, m := range runRecords(t, f) {
		if h, _ := m["spec_hash"].(string); h != "" {
			shown["run record "+filepath.Base(p)] = h
		}
	}
	for _, where := range []string{"plan -json", "state record", "state show -json", contract.EnvSpecHash} {
		if shown[where] == "" {
			t.Errorf("no spec hash in %s", where)
		}
	}
	for where, h := range shown {
		if h == guessed {
			t.Errorf("the spec hash in %s is the redacted spec with the secret filled in: the secret can be guessed offline", where)
		}
		if h != rec.SpecHash {
			t.Errorf("the spec hash in %s (%s) is not the one state records (%s)", where, h, rec.SpecHash)
		}
	}
	fi, err := os.Stat(config.SpecKeyPath(f.statePath()))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the spec hash key is mode %04o, want 0600", fi.Mode().Perm())
	}

	// A changed secret is still a change, and no plan shows either value.
	f.write("pipeline.hcl", secretPipeline(f, theSecret+"-rotated"))
	var changed bool
	for _, ch := range f.plan().Changes {
		changed = changed || (ch.Address == "source.app" && ch.Action != "no-op")
	}
	if !changed {
		t.Error("a changed sensitive value plans no change")
	}
	for _, args := range [][]string{{"plan"}, {"plan", "-json"}} {
		if out := f.run(args...); strings.Contains(out.out+out.err, "SUPERSECRET") {
			t.Errorf("flowctl %v shows the secret:\n%s", args, out)
		}
	}
}

// asUnkeyedVersion rewrites what an apply of the version before keyed
// spec hashes would have left: the unkeyed hash of source.app in its state
// record and on its object (the run record the process executor reads).
func asUnkeyedVersion(t *testing.T, f *fixture, keyed, unkeyed string) {
	t.Helper()
	st, err := state.Open(f.statePath(), "")
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx *state.Tx) error {
		r, err := tx.Component("source.app")
		if err != nil {
			return err
		}
		r.SpecHash, r.ObjectSpecHash = unkeyed, unkeyed
		return tx.PutComponent(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	var rewrote bool
	for p, m := range runRecords(t, f) {
		if m["spec_hash"] != keyed {
			continue
		}
		m["spec_hash"] = unkeyed
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		rewrote = true
	}
	if !rewrote {
		t.Fatal("no run record carries source.app's spec hash")
	}
}

func TestAStateWithUnkeyedHashesPlansNoChangesAndItsProcessKeepsRunning(t *testing.T) {
	f := newFixture(t)
	f.write("pipeline.hcl", secretPipeline(f, theSecret))
	f.apply()
	before := f.records()["source.app"]
	keyed, unkeyed := before.SpecHash, desiredApp(t, f).UnkeyedSpecHash()
	asUnkeyedVersion(t, f, keyed, unkeyed)

	if r := f.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("an unchanged pipeline whose state holds unkeyed hashes plans changes\n%s", r)
	}

	// The next apply (another component is added) records the keyed hash
	// and leaves the running process alone.
	f.write("pipeline.hcl", secretPipeline(f, theSecret, comp{kind: "source", id: "other"}))
	f.apply()
	after := f.records()["source.app"]
	if childOf(after.Handle) != childOf(before.Handle) || !procinfo.Alive(childOf(before.Handle)) {
		t.Fatalf("source.app was restarted: %v, now %v", childOf(before.Handle), childOf(after.Handle))
	}
	if after.SpecHash != keyed || after.ObjectSpecHash != unkeyed {
		t.Errorf("after apply: spec hash %s (want the keyed %s), object's %s (want the unkeyed %s it was started with)", after.SpecHash, keyed, after.ObjectSpecHash, unkeyed)
	}
	if r := f.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("after the re-hash, an unchanged pipeline plans changes\n%s", r)
	}
}

func TestStatusSecurityListsListenersPortsAndWhereTheyAreBound(t *testing.T) {
	f := newFixture(t)
	f.writePipeline([]comp{{kind: "source", id: "a"}})
	f.apply()
	sr := f.serveRecord()
	if sr == nil {
		t.Fatal("apply started no control plane")
	}
	if gw := serve.DockerGatewayHost(); gw != "" {
		for _, a := range sr.AlsoGRPC {
			t.Errorf("the control plane of a process-only pipeline listens on %s (the Docker bridge is %s)", a, gw)
		}
		if slices.Contains(listenersOn(t, sr.GRPC), netip.MustParseAddr(gw)) {
			t.Errorf("/proc/net/tcp shows the control plane's port listening on the Docker bridge %s", gw)
		}
	}
	var doc struct {
		AuthMode      string `json:"auth_mode"`
		DockerGateway string `json:"docker_gateway"`
		Listeners     []struct {
			Service, Address, Reach, Auth string
		} `json:"listeners"`
		Ports []struct {
			Component string   `json:"component"`
			Name      string   `json:"name"`
			Port      int      `json:"port"`
			BoundTo   []string `json:"bound_to"`
		} `json:"component_ports"`
		Unproven []any    `json:"unproven_registrations"`
		Findings []string `json:"findings"`
	}
	r := f.must(0, "status", "--security", "-o", "json")
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("decode status --security -o json: %v\n%s", err, r)
	}
	if doc.AuthMode != "required" || !strings.Contains(doc.DockerGateway, "not listening") {
		t.Errorf("auth mode %q, gateway %q", doc.AuthMode, doc.DockerGateway)
	}
	services := map[string]string{}
	for _, l := range doc.Listeners {
		services[l.Service] = l.Address
		if !strings.Contains(l.Reach, "loopback") {
			t.Errorf("listener %s on %s: reach %q", l.Service, l.Address, l.Reach)
		}
	}
	if services["grpc"] != sr.GRPC || services["http"] != sr.HTTP || len(services) != 2 {
		t.Errorf("listeners %v, the serve record says gRPC %s, HTTP %s", services, sr.GRPC, sr.HTTP)
	}
	rec := f.records()["source.a"]
	if len(doc.Ports) != len(rec.Ports) || len(rec.Ports) == 0 {
		t.Fatalf("ports %+v, state records %v", doc.Ports, rec.Ports)
	}
	for _, p := range doc.Ports {
		if p.Component != "source.a" || rec.Ports[p.Name] != p.Port {
			t.Errorf("port %+v is not one state records (%v)", p, rec.Ports)
		}
		for _, a := range p.BoundTo {
			if ip, err := netip.ParseAddr(a); err != nil || !ip.IsLoopback() {
				t.Errorf("%s %d is bound to %s, not loopback", p.Name, p.Port, a)
			}
		}
	}
	if len(doc.Unproven) != 0 || len(doc.Findings) != 0 {
		t.Errorf("unproven %v, findings %v", doc.Unproven, doc.Findings)
	}
	table := f.must(0, "status", "--security").out
	for _, want := range []string{"LISTENER", sr.GRPC, "auth mode required", "Component ports:", "Registrations without proof: none."} {
		if !strings.Contains(table, want) {
			t.Errorf("status --security does not say %q:\n%s", want, table)
		}
	}
}

// listenersOn is where, per /proc/net/tcp and tcp6, the port of the
// host:port addr listens.
func listenersOn(t *testing.T, addr string) []netip.Addr {
	t.Helper()
	got, err := listeners.OnAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
