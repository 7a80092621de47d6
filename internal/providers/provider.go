// Package providers defines the seam between the engine and the systems
// that run components: the Provider interface every executor implements,
// the values that cross it, and a registry of providers by name.
package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"time"

	"github.com/flowctl/flowctl/internal/config"
)

// Handle is a provider's serialised reference to an object it created (pid
// and start time, container ID, Nomad job ID and modify index). State stores
// it as is; only the provider that made it reads it.
type Handle = json.RawMessage

// ComponentSpec is everything a provider needs to start one instance.
type ComponentSpec struct {
	Pipeline   string
	Lineage    string
	InstanceID string
	SpecHash   string
	// Component is the normalised desired spec.
	Component *config.Component
	// Env is the final environment: the user's env with references resolved,
	// plus what flowctl injects (docs/compat.md, "Environment"). Providers
	// pass it unchanged.
	Env map[string]string
	// Ports flowctl allocated (PORT, HEALTH_PORT).
	Ports map[string]int
	// WorkDir is the pipeline file's folder: relative paths resolve here.
	WorkDir string
}

// Address is the component's address.
func (s *ComponentSpec) Address() string { return s.Component.Address() }

// Observed is what a provider sees of an object in reality.
type Observed struct {
	Address string `json:"address"`
	// Exists is false when the object is gone; the other fields are then empty.
	Exists   bool `json:"exists"`
	Running  bool `json:"running"`
	ExitCode *int `json:"exit_code,omitempty"`
	// Signal names the signal that killed the object ("SIGKILL"), when one
	// did and the executor can tell.
	Signal string `json:"signal,omitempty"`
	// ExitPending says the object has ended but its executor is still
	// recording how (the process executor's shim writing the exit status):
	// look again in a moment rather than judge it now.
	ExitPending bool `json:"exit_pending,omitempty"`
	// SpecHash, Pipeline, Lineage and InstanceID are read back from the
	// object's own labels or metadata.
	SpecHash   string    `json:"spec_hash,omitempty"`
	Pipeline   string    `json:"pipeline,omitempty"`
	Lineage    string    `json:"lineage,omitempty"`
	InstanceID string    `json:"instance_id,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	// Handle refers to the object (List fills it for objects state may not know).
	Handle Handle `json:"handle,omitempty"`
	// Fingerprint changes whenever the object is replaced, restarted or
	// modified: pid+start time, container ID+hash, job modify index.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Detail is a short human description ("exited with code 2").
	Detail string `json:"detail,omitempty"`
	// Ports are the PORT and HEALTH_PORT the object was started with, read
	// back from it, so that an adopted object keeps its ports.
	Ports map[string]int `json:"ports,omitempty"`
	// Health is the object's own health status as its executor reports it
	// (a Docker image's HEALTHCHECK): HealthStarting, HealthHealthy or
	// HealthUnhealthy; empty when the executor checks none.
	Health string `json:"health,omitempty"`
}

// Values of Observed.Health.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// LogOptions selects log lines.
type LogOptions struct {
	Follow     bool
	Since      time.Time
	Tail       int // last N lines; 0 = all
	Timestamps bool
}

// Provider runs components on one kind of executor.
type Provider interface {
	Name() string
	// Start creates and starts one instance and returns its handle as soon
	// as the object exists; readiness is the caller's business.
	Start(ctx context.Context, spec ComponentSpec) (Handle, error)
	// Stop stops the object gracefully, kills it after grace, and removes it.
	// Stopping an object that is already gone is not an error.
	Stop(ctx context.Context, h Handle, grace time.Duration) error
	// Observe reports the object's current state.
	Observe(ctx context.Context, h Handle) (Observed, error)
	// List returns every object this provider holds that is labelled with
	// the pipeline, whatever state file made it.
	List(ctx context.Context, pipeline string) ([]Observed, error)
	// Logs streams the object's log lines.
	Logs(ctx context.Context, h Handle, opts LogOptions) (io.ReadCloser, error)
}

// Registry holds the providers available to a command, by name.
type Registry struct {
	byName map[string]Provider
}

// NewRegistry builds a registry of the given providers.
func NewRegistry(ps ...Provider) *Registry {
	r := &Registry{byName: map[string]Provider{}}
	for _, p := range ps {
		r.byName[p.Name()] = p
	}
	return r
}

// Get returns the provider called name.
func (r *Registry) Get(name string) (Provider, error) {
	p, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("no executor %q is available (have %v)", name, r.Names())
	}
	return p, nil
}

// Names lists the registered providers, sorted.
func (r *Registry) Names() []string {
	var out []string
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// All returns every provider, sorted by name.
func (r *Registry) All() []Provider {
	var out []Provider
	for _, n := range r.Names() {
		out = append(out, r.byName[n])
	}
	return out
}

// AddressResolver is implemented by providers whose components reach each
// other by something other than 127.0.0.1:PORT.
type AddressResolver interface {
	ComponentAddress(pipeline string, c *config.Component, port int) string
}

// Preflighter is implemented by providers that can tell, before an apply
// changes anything, that components cannot start: the engine is
// unreachable, an image is missing and cannot be pulled, a pinned image
// does not match. The engine calls it with every component the apply is
// about to start on this provider, before the first change; an error stops
// the apply with state untouched.
type Preflighter interface {
	Preflight(ctx context.Context, components []*config.Component) error
}

// SelfRestarter is implemented by providers whose executor restarts failed
// components itself by the restart policy flowctl hands it (Nomad's restart
// and reschedule blocks), and runs their health checks itself: the restart
// watcher then only observes them, and readiness is the executor's verdict
// (Observed.Health), not a probe from where flowctl runs.
type SelfRestarter interface {
	RestartsItself() bool
}

// HealthHostResolver is implemented by providers whose health probes must
// target an address other than 127.0.0.1 (a container's bridge address).
type HealthHostResolver interface {
	HealthHost(ctx context.Context, h Handle) (string, error)
}

// ReplaceStopper is implemented by providers whose Stop also removes what
// the objects of a pipeline share once the last of them is gone (the docker
// executor's network). The engine calls StopForReplace instead of Stop when
// a new instance on the same provider follows at once (replace, restart):
// what is shared stays, rather than be removed and made again in between.
type ReplaceStopper interface {
	StopForReplace(ctx context.Context, h Handle, grace time.Duration) error
}

// HostPathMounter is implemented by providers that bind-mount a volume's
// host_path from the machine flowctl runs on (the docker executor). A
// plan names the host folders missing there, and apply creates them
// before it starts any component, as Compose does.
type HostPathMounter interface {
	MountsHostPaths() bool
}

// HostEnvPasser is implemented by providers whose components run on the
// machine flowctl runs on and inherit part of its environment (so that bare
// command names resolve and locale and time zone match the user's shell).
// HostEnv names the variables passed; the engine copies those that are set.
type HostEnvPasser interface {
	HostEnv() []string
}

// EndWatcher is implemented by providers that can tell at once that one of
// a pipeline's objects ended (a shim's exit record, a container's die
// event), so that the restart watcher reacts now rather than at its next
// poll. WatchEnds calls signal for each such end (spurious calls are
// allowed) until ctx ends; it never fails: without its source of events it
// logs and returns, and the watcher's poll remains.
type EndWatcher interface {
	WatchEnds(ctx context.Context, pipeline string, signal func(), log *slog.Logger)
}

// Workload is one component instance as state records it: what a
// WorkloadAttester checks a connection against.
type Workload struct {
	// Address is the component's address (source.ledger).
	Address string
	// Handle is the instance's handle, as this provider returned it.
	Handle Handle
}

// Attestation says which workload made a connection, and how that is
// known.
type Attestation struct {
	// Address is the attested component's address.
	Address string
	// Proof says what was checked, for status and logs: "pid 1234",
	// "container 0123456789ab".
	Proof string
}

// WorkloadAttester is implemented by providers that can prove, from the
// network peer of a connection to the control plane, which of their running
// instances opened it: the process executor finds the socket's owner among
// the instances' process trees, the docker executor the container that
// holds the peer address on the pipeline's network. The control plane uses
// it to accept registrations that carry no token (auth = required).
//
// AttestPeer looks only at workloads (the pipeline's instances on this
// provider). local is the control plane's end of the connection (it may be
// invalid when unknown). It returns the attestation, or an error saying why
// none of the workloads can be shown to hold the connection; that error is
// shown to users ("could not be attested because …"), so it says what was
// looked at.
type WorkloadAttester interface {
	AttestPeer(ctx context.Context, peer, local netip.AddrPort, workloads []Workload) (Attestation, error)
}

// PlanChecker is implemented by providers whose system can judge, without
// changing anything, the objects an apply would create or update (a
// Kubernetes server-side dry run: names, quotas, admission). plan calls it
// with the desired components it would create, update or replace on this
// provider; an error fails the plan, before any apply. It returns, by
// component address, the paths of the existing objects' fields the system
// would change (e.g. "spec.replicas"): paths only, never values.
type PlanChecker interface {
	CheckPlan(ctx context.Context, p *config.Pipeline, components []*config.Component) (map[string][]string, error)
}
