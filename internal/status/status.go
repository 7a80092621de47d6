// Package status is what `flowctl status` reports about a pipeline at one
// instant: for each component, the state and health derived from its state
// record, what its executor observes, the registrations the control plane
// persisted and the restart watcher's saved view; plus the control plane's
// own record, the relay's data-flow counters and the registrations no
// component claims.
//
// Collect reads those facts and derives a Doc from them; rendering the Doc
// is the caller's business. The derivation itself (derive) is a pure
// function of the facts, so every branch is testable without an executor.
package status

import (
	"context"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

// State is a component's state as status reports it.
type State string

// Component states. Detail says why whenever a component is not running.
const (
	StateRunning    State = "running"
	StateStarting   State = "starting"
	StateUnhealthy  State = "unhealthy"
	StateRestarting State = "restarting"
	StateCrashloop  State = "crashloop"
	StateStopped    State = "stopped"
	StateMissing    State = "missing"
	// StateFailed: it ended by a failure that nothing restarts (the
	// control plane is down, or the policy leaves it), or an apply's
	// replacement of it failed.
	StateFailed State = "failed"
)

// Health is a component's health: the control plane registry's word when
// the component registers, else its executor's own check. It is "" when
// nothing reports it. A registration's reported status passes through as
// is, so values beyond the constants below (such as "stopping") occur.
type Health string

// Health values.
const (
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
	HealthStarting  Health = "starting"
	HealthDegraded  Health = "degraded"
	// HealthNoHeartbeat: registered, but no registration heartbeats any
	// more.
	HealthNoHeartbeat Health = "no-heartbeat"
)

// Doc is the whole report; its JSON form is `flowctl status -o json`.
type Doc struct {
	Pipeline     string       `json:"pipeline"`
	Lineage      string       `json:"lineage"`
	Serial       uint64       `json:"serial"`
	StateFile    string       `json:"state_file"`
	Time         time.Time    `json:"time"`
	ControlPlane ControlPlane `json:"control_plane"`
	Components   []Component  `json:"components"`
	// Unmanaged are registrations attributed to no component.
	Unmanaged []Unmanaged `json:"unmanaged"`
	// DataFlows are the relay's per-edge counters, as serve last saved
	// them.
	DataFlows []DataFlow `json:"data_flows"`
}

// DataFlow is one edge of the DAG as the relay counts it: the events and
// bytes moved from one component to the next, and when the last one went
// (absent until one has).
type DataFlow struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Events uint64    `json:"events"`
	Bytes  uint64    `json:"bytes"`
	LastAt time.Time `json:"last_at,omitzero"`
}

// ControlPlane says whether a serve is running for the state file.
type ControlPlane struct {
	Running bool `json:"running"`
	// Needed: it is not running while components of the pipeline run:
	// nothing hears them or restarts them (`flowctl apply` starts it).
	Needed bool `json:"needed,omitempty"`
	// The fields below describe the running serve, or the last one when a
	// record is left (Running false: it was killed).
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	GRPC      string    `json:"grpc,omitempty"`
	// AlsoGRPC are its further gRPC listeners (the Docker bridge's
	// gateway); DockerGateway says why it listens there, or why not.
	AlsoGRPC      []string `json:"also_grpc,omitempty"`
	DockerGateway string   `json:"docker_gateway,omitempty"`
	HTTP          string   `json:"http,omitempty"`
	TLS           bool     `json:"tls,omitempty"`
	AuthMode      string   `json:"auth_mode,omitempty"`
}

// Component is one component's row.
type Component struct {
	Address  string `json:"address"`
	Executor string `json:"executor"`
	State    State  `json:"state"`
	Detail   string `json:"detail,omitempty"`
	Health   Health `json:"health,omitempty"`
	// RegisteredAs are the registrations attributed to the component.
	RegisteredAs        []Registration `json:"registered_as"`
	LastHeartbeat       time.Time      `json:"last_heartbeat,omitzero"`
	HeartbeatAgeSeconds *float64       `json:"heartbeat_age_seconds,omitempty"`
	Restarts            int            `json:"restarts"`
	StartedAt           time.Time      `json:"started_at,omitzero"`
	UptimeSeconds       *float64       `json:"uptime_seconds,omitempty"`
	// Auth says how the latest registration was proven: token,
	// attested:pid 1234, attested:container 0123456789ab, or unproven.
	Auth       string `json:"auth,omitempty"`
	InState    bool   `json:"in_state"`
	InPipeline bool   `json:"in_pipeline"`
}

// Registration is one registration of a component.
type Registration struct {
	ServiceID    string `json:"service_id"`
	Protocol     string `json:"protocol"`
	AttributedBy string `json:"attributed_by"`
	Alive        bool   `json:"alive"`
	Healthy      bool   `json:"healthy"`
	Status       string `json:"status"`
}

// Unmanaged is a registration no component claims.
type Unmanaged struct {
	ServiceID     string    `json:"service_id"`
	Protocol      string    `json:"protocol"`
	Type          string    `json:"type,omitempty"`
	ClaimedID     string    `json:"claimed_id,omitempty"`
	Alive         bool      `json:"alive"`
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	Auth          string    `json:"auth"`
	RemoteAddr    string    `json:"remote_addr,omitempty"`
}

// Input is what Collect reads.
type Input struct {
	Store *state.Store
	// Providers answer for the objects the records name.
	Providers *providers.Registry
	// Desired is the pipeline file's model; nil when working from the
	// state file alone.
	Desired *config.Pipeline
	// Now is the instant the report describes: ages and uptimes are
	// measured to it.
	Now time.Time
}

// Collect reads the state, the registry and serve record persisted in it,
// asks each record's executor about its object, and derives the report.
// Rows come in the pipeline's order, then the records the pipeline no
// longer names, sorted.
func Collect(ctx context.Context, in Input) (*Doc, error) {
	f, err := readFacts(in.Store, in.Now)
	if err != nil {
		return nil, err
	}
	f.desired = in.Desired
	f.observed = observe(ctx, in.Providers, f.records)
	return derive(f), nil
}
