package nomad

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/nomad/nomadtest"
)

// env is a Getenv over a map.
func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// testProvider is a provider pointed at emu through NOMAD_ADDR.
func testProvider(t *testing.T, emu *nomadtest.Emulator, s *config.Nomad) *Provider {
	t.Helper()
	p := New(Options{Settings: s, Getenv: env(map[string]string{"NOMAD_ADDR": emu.URL()}), PollInterval: 5 * time.Millisecond, RequestTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// testSpec is the spec of the single component of a pipeline "p" whose
// component block is body.
func testSpec(t *testing.T, body string) providers.ComponentSpec {
	t.Helper()
	return specIn(t, "p", "lineage-1", body)
}

func specIn(t *testing.T, pipeline, lineage, body string) providers.ComponentSpec {
	t.Helper()
	src := "pipeline \"" + pipeline + "\" {\n  executor = \"nomad\"\n}\n" + body
	pl, diags := config.LoadBytes([]byte(src), "pipeline.hcl", config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("pipeline: %s", config.FormatDiagnostics(diags))
	}
	c := pl.Components[0]
	ports := map[string]int{"PORT": 19000, "HEALTH_PORT": 18000}
	if c.Health != nil && c.Health.Port != 0 {
		ports["HEALTH_PORT"] = c.Health.Port
	}
	return providers.ComponentSpec{
		Pipeline: pipeline, Lineage: lineage, InstanceID: "inst-" + c.ID, SpecHash: c.SpecHash(nil),
		Component: c, Env: map[string]string{"FLOWCTL_COMPONENT_ID": c.ID}, Ports: ports,
	}
}

const imageSource = `source "s" {
  image = "example/source:1"
}
`

// eventually polls cond until it holds, failing the test after a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func observe(t *testing.T, p *Provider, h providers.Handle) providers.Observed {
	t.Helper()
	o, err := p.Observe(context.Background(), h)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	return o
}

func start(t *testing.T, p *Provider, spec providers.ComponentSpec) providers.Handle {
	t.Helper()
	h, err := p.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return h
}

func TestConnectionPipelineBlockWinsOverTheEnvironment(t *testing.T) {
	e := env(map[string]string{
		"NOMAD_ADDR": "http://env:4646", "NOMAD_REGION": "env-region", "NOMAD_NAMESPACE": "env-ns", "NOMAD_TOKEN": "env-token",
		"NOMAD_CACERT": "/ca.pem", "NOMAD_CLIENT_CERT": "/cert.pem", "NOMAD_CLIENT_KEY": "/key.pem", "NOMAD_SKIP_VERIFY": "true",
	})
	c := ResolveConnection(&config.Nomad{Address: "https://block:4646", Namespace: "block-ns", Token: "block-token", Datacenters: []string{"dc2"}}, "pipeline-ns", e)
	if c.Address != "https://block:4646" || c.AddressFrom != "the pipeline's nomad block" || c.Namespace != "block-ns" || c.Region != "env-region" || c.token != "block-token" {
		t.Errorf("connection = %+v", c)
	}
	if c.TLS.CACert != "/ca.pem" || c.TLS.ClientCert != "/cert.pem" || c.TLS.ClientKey != "/key.pem" || !c.TLS.Insecure {
		t.Errorf("TLS = %+v", c.TLS)
	}
	if got := c.datacenters(); len(got) != 1 || got[0] != "dc2" {
		t.Errorf("datacenters = %v", got)
	}
	d := ResolveConnection(nil, "", env(map[string]string{"NOMAD_TOKEN": "env-token"}))
	if d.Address != DefaultAddress || d.token != "env-token" || d.datacenters()[0] != "*" {
		t.Errorf("defaults = %+v", d)
	}
	if e := ResolveConnection(nil, "", e); e.Address != "http://env:4646" || e.AddressFrom != "NOMAD_ADDR" || e.Namespace != "env-ns" {
		t.Errorf("from the environment = %+v", e)
	}
	if p := ResolveConnection(nil, "pipeline-ns", e); p.Namespace != "pipeline-ns" {
		t.Errorf("the pipeline's namespace = %q, want it over NOMAD_NAMESPACE", p.Namespace)
	}
}

func TestStartRegistersTheJobAndObserveSeesItRunHealthy(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	spec := testSpec(t, imageSource)
	h := start(t, p, spec)

	job := emu.Job("p-s")
	if job == nil || *job.JobModifyIndex == 0 {
		t.Fatalf("job p-s is not registered: %+v", job)
	}
	o := observe(t, p, h)
	if !o.Exists || !o.Running || o.SpecHash != spec.SpecHash || o.Lineage != "lineage-1" || o.Address != "source.s" || o.InstanceID != "inst-s" {
		t.Errorf("observed = %+v", o)
	}
	if want := fingerprint("p-s", *job.JobModifyIndex); o.Fingerprint != want {
		t.Errorf("fingerprint = %q, want %q", o.Fingerprint, want)
	}
	if o.Ports["PORT"] != 19000 || o.Ports["HEALTH_PORT"] != 18000 {
		t.Errorf("ports = %v", o.Ports)
	}
	eventually(t, "healthy", func() bool { return observe(t, p, h).Health == providers.HealthHealthy })
	o = observe(t, p, h)
	if o.StartedAt.IsZero() || !strings.HasPrefix(o.Detail, "running (job p-s, 1/1 allocations running") {
		t.Errorf("observed = %+v", o)
	}
}

func TestObserveReportsStartingUntilEveryReplicaRuns(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{StartDelay: time.Hour})
	p := testProvider(t, emu, nil)
	h := start(t, p, testSpec(t, "source \"s\" {\n  image = \"x\"\n  replicas = 2\n}\n"))
	o := observe(t, p, h)
	if !o.Running || o.Health != providers.HealthStarting || !strings.Contains(o.Detail, "0/2 allocations running") {
		t.Errorf("a job being placed: %+v", o)
	}
}

func TestStartRefusesAJobRegisteredSinceThePlan(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	spec := testSpec(t, imageSource)
	// Another state file (another lineage) started the same component.
	other := specIn(t, "p", "lineage-2", imageSource)
	start(t, p, other)
	before := *emu.Job("p-s").JobModifyIndex

	_, err := p.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "was registered since the plan (pipeline p, lineage lineage-2") {
		t.Fatalf("start over a job registered since the plan: %v", err)
	}
	if after := *emu.Job("p-s").JobModifyIndex; after != before {
		t.Errorf("the job was changed (index %d -> %d)", before, after)
	}
}

func TestStartRefusesAJobFlowctlDidNotRegister(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	c, _ := api.NewClient(&api.Config{Address: emu.URL()})
	spec := testSpec(t, imageSource)
	job, _ := Job(&spec, p.conn)
	job.Meta = nil
	if _, _, err := c.Jobs().Register(job, nil); err != nil {
		t.Fatal(err)
	}
	_, err := p.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "flowctl did not register it") {
		t.Fatalf("start over a foreign job: %v", err)
	}
}

func TestStopDeregistersWaitsAndPurges(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	h := start(t, p, testSpec(t, imageSource))
	eventually(t, "running", func() bool { return observe(t, p, h).Health == providers.HealthHealthy })
	if err := p.Stop(context.Background(), h, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if ids := emu.JobIDs(); len(ids) != 0 {
		t.Errorf("jobs left: %v", ids)
	}
	if o := observe(t, p, h); o.Exists {
		t.Errorf("observed after stop: %+v", o)
	}
	if err := p.Stop(context.Background(), h, time.Second); err != nil {
		t.Errorf("stopping a purged job: %v", err)
	}
	var sawStop, sawPurge bool
	for _, r := range emu.Requests() {
		if r.Method == "DELETE" {
			sawStop = sawStop || r.Query.Get("purge") == "false"
			sawPurge = sawPurge || r.Query.Get("purge") == "true"
		}
	}
	if !sawStop || !sawPurge {
		t.Errorf("want a stop then a purge; requests: %+v", emu.Requests())
	}
}

func TestObserveSeesAJobStoppedOutsideFlowctl(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	h := start(t, p, testSpec(t, imageSource))
	before := observe(t, p, h)
	if err := emu.StopJob("p-s"); err != nil {
		t.Fatal(err)
	}
	o := observe(t, p, h)
	if !o.Exists || o.Running || !strings.Contains(o.Detail, "stopped") {
		t.Errorf("observed = %+v", o)
	}
	if o.Fingerprint == before.Fingerprint {
		t.Errorf("fingerprint %q did not change with the stop", o.Fingerprint)
	}
}

func TestObserveShowsACrashLoopThenTheFailure(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{CrashAfter: 30 * time.Millisecond})
	p := testProvider(t, emu, nil)
	h := start(t, p, testSpec(t, `source "s" {
  image = "x"
  restart {
    policy      = "on-failure"
    max_retries = 3
    backoff {
      initial = "40ms"
    }
  }
}
`))
	eventually(t, "running", func() bool { return observe(t, p, h).Health == providers.HealthHealthy })
	emu.CrashLoop("p-s", 3)
	eventually(t, "a crash loop", func() bool {
		o := observe(t, p, h)
		return !o.Running && strings.HasPrefix(o.Detail, "crash-looping: restarted") && strings.Contains(o.Detail, "last exit code 3")
	})
	eventually(t, "the allocation to fail", func() bool { return strings.HasPrefix(observe(t, p, h).Detail, "dead:") })
	o := observe(t, p, h)
	if o.ExitCode == nil || *o.ExitCode != 3 || !strings.Contains(o.Detail, "failed: exited with code 3 after 3 restarts") {
		t.Errorf("observed = %+v (exit %v)", o, o.ExitCode)
	}
}

func TestAnUnlimitedPolicyIsRestartedByNomad(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{RescheduleDelay: 10 * time.Millisecond})
	p := testProvider(t, emu, nil)
	h := start(t, p, testSpec(t, "source \"s\" {\n  image = \"x\"\n  restart {\n    policy = \"always\"\n    backoff {\n      initial = \"10ms\"\n      max = \"5s\"\n    }\n  }\n}\n"))
	eventually(t, "running", func() bool { return observe(t, p, h).Health == providers.HealthHealthy })
	if err := emu.Crash("p-s", 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the restart", func() bool {
		o := observe(t, p, h)
		return o.Running && strings.Contains(o.Detail, "restarted 1 times")
	})
}

func TestListFindsThePipelinesJobsByTheirMeta(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	start(t, p, specIn(t, "p", "lineage-1", imageSource))
	start(t, p, specIn(t, "p", "lineage-2", "source \"t\" {\n  image = \"x\"\n}\n"))
	// Another pipeline whose jobs share the prefix p-.
	start(t, p, specIn(t, "p-x", "lineage-3", imageSource))

	got, err := p.List(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, o := range got {
		seen = append(seen, o.Address+"@"+o.Lineage)
		hd, err := decodeHandle(o.Handle)
		if err != nil || hd.JobID == "" || hd.Task == "" || o.Fingerprint == "" || !o.Running {
			t.Errorf("listed %+v (handle %+v, %v)", o, hd, err)
		}
	}
	if strings.Join(seen, " ") != "source.s@lineage-1 source.t@lineage-2" {
		t.Errorf("listed %v", seen)
	}
}

func TestUnreachableNomadIsAClearError(t *testing.T) {
	p := New(Options{Getenv: env(map[string]string{"NOMAD_ADDR": "http://127.0.0.1:1"}), RequestTimeout: 5 * time.Second})
	h := encodeHandle(handle{JobID: "p-s", Address: "source.s"})
	_, err := p.Observe(context.Background(), h)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "http://127.0.0.1:1 (NOMAD_ADDR)") {
		t.Errorf("observe: %v", err)
	}
	if err := p.Preflight(context.Background(), []*config.Component{{ID: "s"}}); !errors.As(err, &ue) {
		t.Errorf("preflight: %v", err)
	}
	if _, err := p.List(context.Background(), "p"); !errors.As(err, &ue) {
		t.Errorf("list: %v", err)
	}
}

func TestReadsAreTriedAgainAfterServerErrors(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	h := start(t, p, testSpec(t, imageSource))
	emu.FailNext("GET", "/v1/job/", 2, 503)
	if o := observe(t, p, h); !o.Exists {
		t.Errorf("observed = %+v", o)
	}
	emu.FailNext("GET", "/v1/job/", 3, 500)
	if _, err := p.Observe(context.Background(), h); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("observe through three 500s: %v", err)
	}
	// Writes are not repeated: a register may have been done.
	emu.FailNext("PUT", "/v1/jobs", 1, 502)
	if _, err := p.Start(context.Background(), specIn(t, "q", "l", imageSource)); err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("start through a 502: %v", err)
	}
}

func TestASlowNomadIsATimeoutThatSaysSo(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := New(Options{Getenv: env(map[string]string{"NOMAD_ADDR": emu.URL()}), RequestTimeout: 50 * time.Millisecond})
	emu.SetLatency(300 * time.Millisecond)
	_, err := p.Start(context.Background(), testSpec(t, imageSource))
	if err == nil || !strings.Contains(err.Error(), "did not answer within 50ms") {
		t.Errorf("start: %v", err)
	}
}

func TestHealthHostWaitsForNomadsCheckAndGivesTheNode(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{HealthyAfter: 50 * time.Millisecond})
	p := testProvider(t, emu, nil)
	body := "source \"s\" {\n  image = \"x\"\n  health {\n    http = \"/health\"\n  }\n}\n"
	h := start(t, p, testSpec(t, body))
	host, err := p.HealthHost(context.Background(), h)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("health host = %q, %v", host, err)
	}
	if o := observe(t, p, h); o.Health != providers.HealthHealthy || !strings.Contains(o.Detail, "checks passing") {
		t.Errorf("observed = %+v", o)
	}

	if err := p.Stop(context.Background(), h, 0); err != nil {
		t.Fatal(err)
	}
	emu.FailChecks("p-s", true)
	h = start(t, p, testSpec(t, body))
	if _, err := p.HealthHost(context.Background(), h); err == nil || !strings.Contains(err.Error(), "unhealthy") {
		t.Errorf("health host with a failing check: %v", err)
	}
	if o := observe(t, p, h); o.Health != providers.HealthUnhealthy {
		t.Errorf("observed = %+v", o)
	}
}

func TestComponentAddressIsTheNodeOfTheAllocation(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	spec := testSpec(t, imageSource)
	h := start(t, p, spec)
	eventually(t, "running", func() bool { return observe(t, p, h).Health == providers.HealthHealthy })
	if got := p.ComponentAddress("p", spec.Component, 19000); got != "127.0.0.1:19000" {
		t.Errorf("address = %q", got)
	}
	if got := p.ComponentAddress("p", &config.Component{ID: "gone"}, 7); got != "p-gone:7" {
		t.Errorf("address of a job not running = %q", got)
	}
}

func TestLogsTailAndFollow(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	h := start(t, p, testSpec(t, imageSource))
	eventually(t, "running", func() bool { return observe(t, p, h).Health == providers.HealthHealthy })
	for _, l := range []string{"one\n", "two\n", "three\n"} {
		if err := emu.WriteLog("p-s", "stdout", l); err != nil {
			t.Fatal(err)
		}
	}
	if err := emu.WriteLog("p-s", "stderr", "oops\n"); err != nil {
		t.Fatal(err)
	}
	rc, err := p.Logs(context.Background(), h, providers.LogOptions{Tail: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !contains(lines, "two") || !contains(lines, "three") || !contains(lines, "oops") || contains(lines, "one") {
		t.Errorf("tail 2: %q", b)
	}

	rc, err = p.Logs(context.Background(), h, providers.LogOptions{Follow: true, Tail: 1, Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r := bufio.NewReader(rc)
	got := map[string]bool{}
	for len(got) < 2 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (so far %v)", err, got)
		}
		f := strings.SplitN(strings.TrimSpace(l), " ", 3)
		if len(f) != 3 {
			t.Fatalf("line %q is not <time> <stream> <text>", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got[f[1]+" "+f[2]] = true
	}
	if !got["stdout three"] || !got["stderr oops"] {
		t.Errorf("tail 1 of each stream: %v", got)
	}
	if err := emu.WriteLog("p-s", "stdout", "four\n"); err != nil {
		t.Fatal(err)
	}
	l, err := r.ReadString('\n')
	if err != nil || !strings.HasSuffix(l, " stdout four\n") {
		t.Errorf("followed line = %q, %v", l, err)
	}
	// The follow ends when the allocation does.
	if err := emu.StopJob("p-s"); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("after the stop: %q, %v", rest, err)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func TestTheTokenIsSentAndKeptOutOfHandlesAndErrors(t *testing.T) {
	const token = "s3cret-acl-token"
	emu := nomadtest.Start(t, nomadtest.Options{Token: token})
	p := testProvider(t, emu, &config.Nomad{Token: token})
	h := start(t, p, testSpec(t, imageSource))
	o := observe(t, p, h)
	for what, b := range map[string]string{"handle": string(h), "listed handle": string(o.Handle), "detail": o.Detail} {
		if strings.Contains(b, token) {
			t.Errorf("the %s holds the token: %s", what, b)
		}
	}
	for _, r := range emu.Requests() {
		if !r.Token {
			t.Errorf("%s %s was sent without the token", r.Method, r.Path)
		}
	}

	// The environment's token, when the pipeline names none; a wrong one is
	// a refusal that says what to check, and never shows a token.
	q := New(Options{Getenv: env(map[string]string{"NOMAD_ADDR": emu.URL(), "NOMAD_TOKEN": "wrong-token"})})
	_, err := q.Observe(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "ACL token") || strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("observe with a wrong token: %v", err)
	}
}

func TestPreflightChecksTheClusterAnswers(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	if err := p.Preflight(context.Background(), []*config.Component{{ID: "s"}}); err != nil {
		t.Errorf("preflight: %v", err)
	}
	if err := p.Preflight(context.Background(), nil); err != nil {
		t.Errorf("preflight of nothing: %v", err)
	}
}

// A follow that resumes after a backlog (Since set, no Tail) starts at the
// end of the log: Nomad's lines carry no time to select them by.
func TestLogsFollowWithSinceRepeatsNothing(t *testing.T) {
	emu := nomadtest.Start(t, nomadtest.Options{})
	p := testProvider(t, emu, nil)
	h := start(t, p, testSpec(t, imageSource))
	eventually(t, "running", func() bool { return observe(t, p, h).Health == providers.HealthHealthy })
	if err := emu.WriteLog("p-s", "stdout", "old\n"); err != nil {
		t.Fatal(err)
	}
	rc, err := p.Logs(context.Background(), h, providers.LogOptions{Follow: true, Since: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Lines written from now on arrive; the one written before never does.
	type read struct {
		line string
		err  error
	}
	first := make(chan read, 1)
	go func() {
		l, err := bufio.NewReader(rc).ReadString('\n')
		first <- read{l, err}
	}()
	var got read
	for waiting := true; waiting; {
		if err := emu.WriteLog("p-s", "stdout", "new\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case got = <-first:
			waiting = false
		case <-time.After(20 * time.Millisecond):
		}
	}
	if got.err != nil || got.line != "new\n" {
		t.Errorf("first followed line = %q, %v", got.line, got.err)
	}
}
