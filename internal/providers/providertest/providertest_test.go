package providertest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
)

func spec(addr string) providers.ComponentSpec {
	kind, id, _ := strings.Cut(addr, ".")
	return providers.ComponentSpec{
		Pipeline: "demo", Lineage: "L1", InstanceID: "i-" + id, SpecHash: "h-" + id,
		Component: &config.Component{Kind: config.Kind(kind), ID: id},
		Ports:     map[string]int{"PORT": 9000},
	}
}

func TestStartedObjectsAreObservedListedAndGoneOnceStopped(t *testing.T) {
	ctx := context.Background()
	p := New("process")
	ha, err := p.Start(ctx, spec("source.a"))
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := p.Start(ctx, spec("sink.b"))
	o, _ := p.Observe(ctx, ha)
	if !o.Exists || !o.Running || o.SpecHash != "h-a" || o.InstanceID != "i-a" || o.Fingerprint != "source.a#1" || o.Ports["PORT"] != 9000 {
		t.Fatalf("observed %+v", o)
	}
	list, _ := p.List(ctx, "demo")
	if len(list) != 2 || list[0].Address != "sink.b" || list[1].Address != "source.a" {
		t.Fatalf("listed %+v", list)
	}
	if other, _ := p.List(ctx, "other"); len(other) != 0 {
		t.Fatalf("another pipeline's list: %+v", other)
	}
	if err := p.Stop(ctx, hb, time.Second); err != nil {
		t.Fatal(err)
	}
	if o, _ := p.Observe(ctx, hb); o.Exists {
		t.Fatalf("a stopped object is still there: %+v", o)
	}
	if cur, _ := p.Current("source.a"); !slices.Equal(cur, ha) {
		t.Fatalf("current %s, want %s", cur, ha)
	}
	want := []string{"start source.a", "start sink.b", "observe source.a", "list demo", "list other", "stop sink.b", "observe sink.b"}
	var got []string
	for _, c := range p.Calls() {
		got = append(got, c.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if ops := p.Ops(OpStop); !slices.Equal(ops, []string{"stop sink.b"}) {
		t.Fatalf("stops %q", ops)
	}
}

func TestInjectedFailuresHitOnlyTheirComponent(t *testing.T) {
	ctx := context.Background()
	p := New("process")
	p.FailStart("source.a", errors.New("no image"))
	p.FailStop("sink.b", errors.New("stuck"))
	p.NeverReady("sink.c")
	if _, err := p.Start(ctx, spec("source.a")); err == nil || err.Error() != "no image" {
		t.Fatalf("start a: %v", err)
	}
	hb, err := p.Start(ctx, spec("sink.b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx, hb, 0); err == nil {
		t.Fatal("stop b succeeded")
	}
	if _, ok := p.Object(hb); !ok {
		t.Fatal("an object whose stop failed is gone")
	}
	hc, _ := p.Start(ctx, spec("sink.c"))
	if o, _ := p.Observe(ctx, hc); !o.Running || o.Health != providers.HealthUnhealthy {
		t.Fatalf("never ready: %+v", o)
	}
	if o, _ := p.Observe(ctx, hb); o.Health != "" {
		t.Fatalf("another component is unhealthy too: %+v", o)
	}
}

func TestObservationsAreWhatTheTestSets(t *testing.T) {
	ctx := context.Background()
	p := New("process")
	h := p.Put(providers.Observed{Address: "source.a", Exists: true, Running: true, Pipeline: "demo", Fingerprint: "fp"})
	if !slices.Equal(h, HandleOf("fp")) {
		t.Fatalf("handle %s", h)
	}
	p.Exit(h, 2)
	if o, _ := p.Observe(ctx, h); o.Running || o.ExitCode == nil || *o.ExitCode != 2 || o.Signal != "" {
		t.Fatalf("exited: %+v", o)
	}
	p.Kill(h, "SIGKILL")
	if o, _ := p.Observe(ctx, h); o.Running || o.Signal != "SIGKILL" {
		t.Fatalf("killed: %+v", o)
	}
	var seen []providers.Observed
	p.OnObserve(func(o providers.Observed) { seen = append(seen, o) })
	p.Remove(h)
	if o, _ := p.Observe(ctx, h); o.Exists || len(seen) != 1 || seen[0].Exists {
		t.Fatalf("removed: %+v, hook saw %+v", o, seen)
	}
}

func TestCapabilitiesAreOffUntilSwitchedOn(t *testing.T) {
	p := New("process")
	if p.RestartsItself() || len(p.HostEnv()) != 0 || p.Preflight(context.Background(), nil) != nil {
		t.Fatal("a capability is on by default")
	}
	p.SetRestartsItself(true)
	p.SetHostEnv("PATH", "TZ")
	p.FailPreflight(errors.New("engine unreachable"))
	if !p.RestartsItself() || !slices.Equal(p.HostEnv(), []string{"PATH", "TZ"}) || p.Preflight(context.Background(), nil) == nil {
		t.Fatal("a capability did not switch on")
	}
}

func TestLogsKeepSinceAndTailAndFollowUntilTheLogEnds(t *testing.T) {
	ctx := context.Background()
	p := New("process")
	h := HandleOf("a#1")
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	line := func(s int, text string) string {
		return t0.Add(time.Duration(s)*time.Second).Format(time.RFC3339Nano) + " stdout " + text
	}
	l := NewLog(line(0, "one"), line(1, "two"), line(2, "three"))
	p.SetLog(h, l)

	rc, err := p.Logs(ctx, h, providers.LogOptions{Since: t0.Add(time.Second), Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	if string(b) != line(2, "three")+"\n" {
		t.Fatalf("since+tail: %q", b)
	}

	rc, err = p.Logs(ctx, h, providers.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for range 3 {
		sc.Scan()
	}
	l.Add(line(3, "four"))
	if !sc.Scan() || sc.Text() != line(3, "four") {
		t.Fatalf("followed %q", sc.Text())
	}
	l.End()
	if sc.Scan() {
		t.Fatalf("read %q after the end", sc.Text())
	}
	if len(p.LogRequests()) != 2 || l.Delivered() != 5 {
		t.Fatalf("requests %d, delivered %d", len(p.LogRequests()), l.Delivered())
	}
	if _, err := p.Logs(ctx, HandleOf("none"), providers.LogOptions{}); err == nil {
		t.Fatal("a handle without a log has one")
	}
}
