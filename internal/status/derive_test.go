package status

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/watch"
)

// fakeProvider answers Observe from a table keyed by handle; it runs
// nothing.
type fakeProvider struct {
	name     string
	observed map[string]providers.Observed
	err      error
}

var errNotFaked = errors.New("not faked")

func (p *fakeProvider) Name() string { return p.name }

func (p *fakeProvider) Start(context.Context, providers.ComponentSpec) (providers.Handle, error) {
	return nil, errNotFaked
}

func (p *fakeProvider) Stop(context.Context, providers.Handle, time.Duration) error {
	return errNotFaked
}

func (p *fakeProvider) Observe(_ context.Context, h providers.Handle) (providers.Observed, error) {
	if p.err != nil {
		return providers.Observed{}, p.err
	}
	obs, ok := p.observed[string(h)]
	if !ok {
		return providers.Observed{}, errors.New("no such handle: " + string(h))
	}
	return obs, nil
}

func (p *fakeProvider) List(context.Context, string) ([]providers.Observed, error) {
	return nil, errNotFaked
}

func (p *fakeProvider) Logs(context.Context, providers.Handle, providers.LogOptions) (io.ReadCloser, error) {
	return nil, errNotFaked
}

// brief is the part of a row a situation pins.
type brief struct {
	State    State
	Detail   string
	Health   Health
	Auth     string
	Restarts int
	// Uptime is -1 when the row has none.
	Uptime time.Duration
}

func briefOf(c Component) brief {
	b := brief{State: c.State, Detail: c.Detail, Health: c.Health, Auth: c.Auth, Restarts: c.Restarts, Uptime: -1}
	if c.UptimeSeconds != nil {
		b.Uptime = time.Duration(*c.UptimeSeconds * float64(time.Second))
	}
	return b
}

func TestDeriveTellsEachSituationApart(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	code := func(n int) *int { return &n }
	const handle = `{"pid":42}`
	const onFailure = `{"restart":{"policy":"on-failure","max_retries":5}}`
	rec := func(status, spec string) *state.Record {
		return &state.Record{
			Address: "source.a", Kind: "source", ID: "a", Provider: "fake", InstanceID: "i-1", Status: status,
			Spec: json.RawMessage(spec), Handle: providers.Handle(handle), StartedAt: now.Add(-2 * time.Hour), RestartCount: 1,
		}
	}
	withoutHandle := rec(state.StatusCreating, onFailure)
	withoutHandle.Handle = nil
	crashlooped := rec(state.StatusCrashloop, onFailure)
	crashlooped.StatusReason = "retries spent"
	running := providers.Observed{Exists: true, Running: true, StartedAt: now.Add(-time.Hour)}
	exited := providers.Observed{Exists: true, ExitCode: code(2), Detail: "exited with code 2"}
	killed := providers.Observed{Exists: true, Signal: "SIGKILL", Detail: "killed by SIGKILL"}
	healthy := controlplane.Registration{
		ServiceID: "a", Protocol: controlplane.ProtocolV1, Component: "source.a", AttributedBy: controlplane.ByToken, Auth: controlplane.AuthToken,
		Alive: true, Healthy: true, Status: controlplane.StatusHealthy, RegisteredAt: now.Add(-time.Hour), LastHeartbeat: now.Add(-5 * time.Second),
	}
	silent := healthy
	silent.Alive, silent.Healthy, silent.LastHeartbeat = false, false, now.Add(-5*time.Minute)
	stray := controlplane.Registration{ServiceID: "stray", Protocol: controlplane.ProtocolLegacy, AttributedBy: controlplane.Unmanaged, Auth: controlplane.AuthUnauthenticated, Alive: true}
	backoff := watch.State{
		Phase: watch.PhaseBackoff, Instance: "i-1", Attempt: 2, Reason: "exited code=2", ExitCode: code(2),
		FailedAt: now.Add(-time.Second), Delay: 5 * time.Second, NextAttempt: now.Add(4 * time.Second),
	}
	crashloop := watch.State{Phase: watch.PhaseCrashloop, Instance: "i-1", Attempt: 5, Reason: "exited code=2", ExitCode: code(2)}
	otherInstance := backoff
	otherInstance.Instance = "i-0"

	for _, tc := range []struct {
		name       string
		inPipeline bool
		rec        *state.Record // nil: not applied
		obs        *providers.Observed
		obsErr     error
		regs       []controlplane.Registration
		watched    *watch.State
		serveUp    bool
		want       brief
		unmanaged  []string
	}{
		{
			name: "running, healthy and registered", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &running,
			regs: []controlplane.Registration{healthy}, serveUp: true,
			want: brief{State: StateRunning, Health: HealthHealthy, Auth: "token", Restarts: 1, Uptime: time.Hour},
		},
		{
			name: "running, registered but silent", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &running,
			regs: []controlplane.Registration{silent}, serveUp: true,
			want: brief{State: StateUnhealthy, Detail: "registered, but no heartbeat within 3 intervals", Health: HealthNoHeartbeat, Auth: "token", Restarts: 1, Uptime: time.Hour},
		},
		{
			name: "exited with a code while serve is down", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &exited,
			want: brief{State: StateFailed, Detail: "exited with code 2; the control plane is not running: nothing restarts it", Restarts: 1, Uptime: -1},
		},
		{
			name: "exited with a code while serve restarts it", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &exited, serveUp: true,
			want: brief{State: StateRestarting, Detail: "exited with code 2", Restarts: 1, Uptime: -1},
		},
		{
			name: "killed while serve is down is a failure, not a stop, and not healthy", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &killed,
			regs: []controlplane.Registration{healthy},
			want: brief{State: StateFailed, Detail: "killed by SIGKILL; the control plane is not running: nothing restarts it", Auth: "token", Restarts: 1, Uptime: -1},
		},
		{
			name: "backing off before a restart", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &exited, watched: &backoff,
			want: brief{State: StateRestarting, Detail: "backoff: exited code=2, attempt 2 of 5, next attempt in 4s", Restarts: 1, Uptime: -1},
		},
		{
			name: "a backoff saved for another instance is not this one's", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &exited, watched: &otherInstance,
			want: brief{State: StateFailed, Detail: "exited with code 2; the control plane is not running: nothing restarts it", Restarts: 1, Uptime: -1},
		},
		{
			name: "a pending attempt does not hide a running object", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &running, watched: &backoff,
			want: brief{State: StateRunning, Restarts: 1, Uptime: time.Hour},
		},
		{
			name: "crashloop as the watcher saw it", inPipeline: true, rec: crashlooped, obs: &exited, watched: &crashloop, serveUp: true,
			want: brief{State: StateCrashloop, Detail: "crashloop: exited code=2 after 5 restarts", Restarts: 1, Uptime: -1},
		},
		{
			name: "crashloop as recorded", inPipeline: true, rec: crashlooped, obs: &exited,
			want: brief{State: StateCrashloop, Detail: "retries spent", Restarts: 1, Uptime: -1},
		},
		{
			name: "the object is gone", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &providers.Observed{},
			want: brief{State: StateMissing, Detail: "the object is gone (removed outside flowctl?)", Restarts: 1, Uptime: -1},
		},
		{
			name: "the start never returned a handle", inPipeline: true, rec: withoutHandle,
			want: brief{State: StateStarting, Detail: "being created", Restarts: 1, Uptime: -1},
		},
		{
			name: "the executor is unreachable", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obsErr: errors.New("engine down\nsecond line"),
			want: brief{State: StateRunning, Detail: "executor unreachable: engine down", Restarts: 1, Uptime: 2 * time.Hour},
		},
		{
			name: "in the pipeline, never applied", inPipeline: true,
			want: brief{State: StateMissing, Detail: "not applied", Uptime: -1},
		},
		{
			name: "an unmanaged registration is listed apart", inPipeline: true, rec: rec(state.StatusRunning, onFailure), obs: &running,
			regs: []controlplane.Registration{stray}, serveUp: true,
			want:      brief{State: StateRunning, Restarts: 1, Uptime: time.Hour},
			unmanaged: []string{"stray"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &facts{now: now, regs: tc.regs, watched: map[string]watch.State{}, controlPlane: ControlPlane{Running: tc.serveUp}}
			if tc.inPipeline {
				f.desired = &config.Pipeline{Components: []*config.Component{{Kind: "source", ID: "a", Executor: "fake"}}}
			}
			if tc.rec != nil {
				f.records = []*state.Record{tc.rec}
			}
			if tc.watched != nil {
				f.watched["source.a"] = *tc.watched
			}
			fake := &fakeProvider{name: "fake", err: tc.obsErr}
			if tc.obs != nil {
				fake.observed = map[string]providers.Observed{handle: *tc.obs}
			}
			f.observed = observe(context.Background(), providers.NewRegistry(fake), f.records)

			doc := derive(f)
			if len(doc.Components) != 1 || doc.Components[0].Address != "source.a" {
				t.Fatalf("components %+v", doc.Components)
			}
			if got := briefOf(doc.Components[0]); got != tc.want {
				t.Errorf("row %+v\nwant %+v", got, tc.want)
			}
			var unmanaged []string
			for _, u := range doc.Unmanaged {
				unmanaged = append(unmanaged, u.ServiceID)
			}
			if len(unmanaged) != len(tc.unmanaged) || (len(unmanaged) > 0 && unmanaged[0] != tc.unmanaged[0]) {
				t.Errorf("unmanaged %v, want %v", unmanaged, tc.unmanaged)
			}
		})
	}
}

func TestDeriveListsThePipelineThenRecordsItNoLongerNames(t *testing.T) {
	desired := &config.Pipeline{Components: []*config.Component{
		{Kind: "source", ID: "z", Executor: "process"},
		{Kind: "sink", ID: "a", Executor: "docker"},
	}}
	recs := []*state.Record{
		{Address: "sink.a", Provider: "docker", Status: state.StatusStopped},
		{Address: "processor.old", Provider: "process", Status: state.StatusStopped},
		{Address: "processor.dropped", Provider: "process", Status: state.StatusStopped},
	}
	doc := derive(&facts{desired: desired, records: recs})
	var got []string
	for _, c := range doc.Components {
		got = append(got, c.Address)
	}
	want := []string{"source.z", "sink.a", "processor.dropped", "processor.old"}
	if len(got) != len(want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("rows %v, want %v", got, want)
		}
	}
	if c := doc.Components[0]; c.InState || !c.InPipeline || c.Executor != "process" {
		t.Errorf("source.z %+v", c)
	}
	if c := doc.Components[2]; !c.InState || c.InPipeline {
		t.Errorf("processor.dropped %+v", c)
	}
	if doc.Components == nil || doc.Unmanaged == nil || doc.DataFlows == nil || doc.Components[0].RegisteredAs == nil {
		t.Error("an empty list must encode as [], not null")
	}
}

func TestComponentStatus(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	code := func(n int) *int { return &n }
	running := &observation{obs: providers.Observed{Exists: true, Running: true, StartedAt: now.Add(-time.Hour)}}
	rec := func(status string, spec string) *state.Record {
		return &state.Record{Address: "source.a", Provider: "process", Status: status, Spec: json.RawMessage(spec), StartedAt: now.Add(-2 * time.Hour)}
	}
	alive := controlplane.Registration{ServiceID: "a", Protocol: controlplane.ProtocolV1, Component: "source.a", Auth: controlplane.AuthToken, Alive: true, Healthy: true, Status: controlplane.StatusUnknown, LastHeartbeat: now.Add(-5 * time.Second)}
	dead := alive
	dead.Alive, dead.Healthy = false, false
	reportsUnhealthy := alive
	reportsUnhealthy.Status, reportsUnhealthy.Healthy = controlplane.StatusUnhealthy, false

	for _, tc := range []struct {
		name       string
		rec        *state.Record
		obs        *observation
		regs       []controlplane.Registration
		serveUp    bool
		state      State
		health     Health
		wantUptime bool
	}{
		{"not applied", nil, nil, nil, false, StateMissing, "", false},
		{"running, no registration", rec(state.StatusRunning, ""), running, nil, false, StateRunning, "", true},
		{"running and heartbeating", rec(state.StatusRunning, ""), running, []controlplane.Registration{alive}, true, StateRunning, "healthy", true},
		{"heartbeats stopped", rec(state.StatusRunning, ""), running, []controlplane.Registration{dead}, true, StateUnhealthy, "no-heartbeat", true},
		{"reports unhealthy", rec(state.StatusRunning, ""), running, []controlplane.Registration{reportsUnhealthy}, true, StateUnhealthy, "unhealthy", true},
		{"not ready yet", rec(state.StatusCreating, ""), running, nil, false, StateStarting, "", true},
		{"never became ready", rec(state.StatusFailed, ""), running, nil, false, StateUnhealthy, "", true},
		{"docker health starting", rec(state.StatusRunning, ""), &observation{obs: providers.Observed{Exists: true, Running: true, Health: providers.HealthStarting}}, nil, false, StateStarting, "starting", true},
		{"gone", rec(state.StatusRunning, ""), &observation{obs: providers.Observed{}}, nil, false, StateMissing, "", false},
		{"exited, serve down", rec(state.StatusRunning, ""), &observation{obs: providers.Observed{Exists: true, ExitCode: code(1)}}, nil, false, StateFailed, "", false},
		{"restarting, its last registration healthy", rec(state.StatusRunning, `{"restart":{"policy":"on-failure"}}`), &observation{obs: providers.Observed{Exists: true, ExitCode: code(1)}}, []controlplane.Registration{alive}, true, StateRestarting, "", false},
		{"exited 0, serve down", rec(state.StatusRunning, ""), &observation{obs: providers.Observed{Exists: true, ExitCode: code(0)}}, nil, false, StateStopped, "", false},
		{"exited, on-failure, serve up", rec(state.StatusRunning, `{"restart":{"policy":"on-failure"}}`), &observation{obs: providers.Observed{Exists: true, ExitCode: code(1)}}, nil, true, StateRestarting, "", false},
		{"exited 0, on-failure", rec(state.StatusRunning, `{"restart":{"policy":"on-failure"}}`), &observation{obs: providers.Observed{Exists: true, ExitCode: code(0)}}, nil, true, StateStopped, "", false},
		{"exited, never", rec(state.StatusRunning, `{"restart":{"policy":"never"}}`), &observation{obs: providers.Observed{Exists: true, ExitCode: code(1)}}, nil, true, StateFailed, "", false},
		{"its replacement failed", &state.Record{Address: "source.a", Provider: "process", Status: state.StatusFailed, StatusReason: "replace failed: start: no such image"}, nil, nil, true, StateFailed, "", false},
		{"stopped on purpose", rec(state.StatusStopped, ""), running, nil, true, StateStopped, "", false},
		{"crashloop", rec(state.StatusCrashloop, ""), &observation{obs: providers.Observed{Exists: true}}, nil, true, StateCrashloop, "", false},
		{"executor unreachable", rec(state.StatusRunning, ""), &observation{err: os.ErrDeadlineExceeded}, nil, false, StateRunning, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := componentStatus("source.a", tc.rec, nil, tc.obs, tc.regs, tc.serveUp, now)
			if row.State != tc.state || row.Health != tc.health || (row.UptimeSeconds != nil) != tc.wantUptime {
				t.Fatalf("state %q health %q uptime %v (%+v); want %q %q uptime %t", row.State, row.Health, row.UptimeSeconds, row, tc.state, tc.health, tc.wantUptime)
			}
			if tc.name == "running and heartbeating" && (*row.HeartbeatAgeSeconds != 5 || *row.UptimeSeconds != 3600 || row.Auth != "token") {
				t.Fatalf("ages %+v", row)
			}
		})
	}
}
