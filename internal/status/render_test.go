package status

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil/golden"
)

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                             "0s",
		45 * time.Second:              "45s",
		3*time.Minute + 2*time.Second: "3m02s",
		2*time.Hour + 5*time.Minute:   "2h05m",
		76 * time.Hour:                "3d4h",
		-time.Second:                  "0s",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}

// fixedStatusDocs are status documents at a fixed time, one per control
// plane situation the table tells apart.
func fixedStatusDocs() map[string]*Doc {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	secs := func(d time.Duration) *float64 { s := d.Seconds(); return &s }
	components := []Component{
		{
			Address: "source.ledger", Executor: "process", State: StateRunning, Health: "healthy",
			RegisteredAs:  []Registration{{ServiceID: "ledger", Protocol: "v1", AttributedBy: "token", Alive: true, Healthy: true, Status: "healthy"}},
			LastHeartbeat: now.Add(-5 * time.Second), HeartbeatAgeSeconds: secs(5 * time.Second),
			Restarts: 1, StartedAt: now.Add(-26 * time.Hour), UptimeSeconds: secs(26 * time.Hour),
			Auth: "token", InState: true, InPipeline: true,
		},
		{
			Address: "processor.ttp", Executor: "docker", State: StateRestarting, Detail: "backoff: exited code=2, attempt 3 of 5, next attempt in 4s",
			RegisteredAs: []Registration{
				{ServiceID: "ttp", Protocol: "legacy", AttributedBy: "health_port", Status: "unknown"},
				{ServiceID: "ttp-2", Protocol: "v1", AttributedBy: "component_id", Status: "degraded"},
			},
			LastHeartbeat: now.Add(-3*time.Minute - 12*time.Second), HeartbeatAgeSeconds: secs(3*time.Minute + 12*time.Second),
			Restarts: 3, Health: "no-heartbeat", Auth: "unauthenticated", InState: true, InPipeline: true,
		},
		{Address: "sink.out", Executor: "process", State: StateStopped, Detail: "exited with code 1", RegisteredAs: []Registration{}, InState: true, InPipeline: true},
		{Address: "sink.new", State: StateMissing, Detail: "not applied", RegisteredAs: []Registration{}, InPipeline: true},
	}
	return map[string]*Doc{
		"serve-running": {
			Pipeline: "ttp", Lineage: "3f1c2a9e-lineage", Serial: 7, StateFile: "/work/.flowctl/ttp.state.db", Time: now,
			ControlPlane: ControlPlane{Running: true, PID: 4242, StartedAt: now.Add(-2*time.Hour - 5*time.Minute), GRPC: "127.0.0.1:8080", HTTP: "127.0.0.1:8081", TLS: true, AuthMode: "required"},
			Components:   components,
			Unmanaged: []Unmanaged{
				{ServiceID: "stray", Protocol: "legacy", Type: "processor", ClaimedID: "ghost", Alive: true, LastHeartbeat: now.Add(-45 * time.Second), Auth: "unauthenticated", RemoteAddr: "127.0.0.1:50312"},
				{ServiceID: "quiet", Protocol: "v1", Auth: "unauthenticated"},
			},
			DataFlows: []DataFlow{
				{From: "source.ledger", To: "processor.ttp", Events: 1200, Bytes: 98304, LastAt: now.Add(-2 * time.Second)},
				{From: "processor.ttp", To: "sink.out", Events: 0, Bytes: 0},
			},
		},
		"serve-killed": {
			Pipeline: "ttp", Lineage: "3f1c2a9e-lineage", Serial: 7, StateFile: "/work/.flowctl/ttp.state.db", Time: now,
			ControlPlane: ControlPlane{PID: 4242, StartedAt: now.Add(-time.Hour), GRPC: "127.0.0.1:8080", AuthMode: "permissive"},
			Components:   components[2:],
			Unmanaged:    []Unmanaged{},
			DataFlows:    []DataFlow{},
		},
		"empty": {
			Pipeline: "ttp", Lineage: "3f1c2a9e-lineage", StateFile: ".flowctl/ttp.state.db", Time: now,
			Components: []Component{}, Unmanaged: []Unmanaged{}, DataFlows: []DataFlow{},
		},
	}
}

func TestStatusTableAndJSONMatchGoldenFiles(t *testing.T) {
	for name, doc := range fixedStatusDocs() {
		t.Run(name, func(t *testing.T) {
			for output, file := range map[string]string{"table": name + ".golden", "json": name + ".json.golden"} {
				var b bytes.Buffer
				if err := Write(&b, doc, output, false); err != nil {
					t.Fatal(err)
				}
				golden.Check(t, filepath.Join("testdata", file), b.Bytes())
			}
		})
	}
}
