// Package config loads a pipeline from flowctl/v1 YAML or from HCL into one
// normalised model, validates it with source positions, and renders the
// canonical form whose SHA-256 is a component's spec hash.
//
// Whichever language the user wrote, the loaders produce the same *Pipeline:
// defaults filled in, quantities parsed, references resolved to addresses. Two
// files that say the same thing therefore canonicalise to the same bytes.
package config

import (
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Kind is the role of a component in the DAG.
type Kind string

// The three component kinds. Their order (source, processor, sink) is the
// order in which files list them and in which the model keeps them.
const (
	KindSource    Kind = "source"
	KindProcessor Kind = "processor"
	KindSink      Kind = "sink"
)

// Kinds lists every kind in canonical order.
var Kinds = []Kind{KindSource, KindProcessor, KindSink}

// ValidKind reports whether s names a component kind.
func ValidKind(s string) bool {
	switch Kind(s) {
	case KindSource, KindProcessor, KindSink:
		return true
	}
	return false
}

// Executors names every executor a component may use.
var Executors = []string{"process", "docker", "nomad", ExecutorKubernetes}

// DefaultExecutor is the executor of a pipeline that names none: local
// processes need nothing installed.
const DefaultExecutor = "process"

// Restart policies.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Defaults filled in by normalisation, so that a file that states a default
// and a file that leaves it out produce the same hash.
const (
	DefaultRestartPolicy     = RestartOnFailure
	DefaultOnFailureRetries  = 5
	UnlimitedRetries         = -1
	DefaultBackoffInitial    = Duration(time.Second)
	DefaultBackoffMax        = Duration(5 * time.Minute)
	DefaultBackoffMultiplier = 2.0
	DefaultStopTimeout       = Duration(10 * time.Second)
	DefaultHealthInterval    = Duration(10 * time.Second)
	DefaultHealthTimeout     = Duration(2 * time.Second)
	DefaultFailureThreshold  = 3
	DefaultSuccessThreshold  = 1
	DefaultComponentRegistry = "withobsrvr"
	DefaultPortProtocol      = "tcp"
	DefaultHostIP            = "127.0.0.1"
	HealthHTTP               = "http"
	HealthTCP                = "tcp"
	HealthExec               = "exec"
	AddressAttr              = "address"
	PortAttr                 = "port"
	HealthPortAttr           = "health_port"
)

// Image pull policies (Component.Pull).
const (
	// PullMissing pulls an image only when it is not present locally.
	PullMissing = "missing"
	// PullAlways pulls before starting, so a moved tag is followed.
	PullAlways = "always"
	// PullNever never pulls: a missing image fails the start.
	PullNever = "never"
)

// PullPolicies lists the valid values of Component.Pull.
var PullPolicies = []string{PullMissing, PullAlways, PullNever}

// DeferredAttrs are the attributes of a component that are known only after
// apply; a pipeline may reference them as KIND.ID.ATTR.
var DeferredAttrs = []string{AddressAttr, PortAttr, HealthPortAttr}

// Pipeline is the normalised model of one pipeline file.
type Pipeline struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Executor is the pipeline's default executor; every component carries
	// its resolved executor too.
	Executor string `json:"executor"`
	// ComponentRegistry is the image prefix that registry-style types
	// (`type: name@v1.2.3`) resolve under.
	ComponentRegistry string `json:"component_registry"`
	// Config is spec.config of the YAML format: free-form pipeline settings.
	Config map[string]string `json:"config,omitempty"`
	// TrustedRegistries, when set, are the only places container images may
	// come from: a registry host ("ghcr.io") or a repository prefix
	// ("docker.io/withobsrvr"), sorted. RequireDigest makes every container
	// image be pinned by digest (repo@sha256:...) or by image_id. Both are
	// checked by validation, before anything runs.
	TrustedRegistries []string `json:"trusted_registries,omitempty"`
	RequireDigest     bool     `json:"require_digest,omitempty"`
	// ControlPlane is the host:port of a control plane the pipeline's
	// components use; empty: flowctl starts one for the state folder.
	// Auth is its token mode, "required" (default) or "permissive".
	ControlPlane string `json:"control_plane,omitempty"`
	Auth         string `json:"auth,omitempty"`
	// ImagePolicy is the pipeline's image_policy block: the signature
	// images must carry (components without their own take it).
	ImagePolicy *ImagePolicy `json:"image_policy,omitempty"`
	// Nomad is the nomad block: the cluster the nomad executor uses (nil:
	// Nomad's own environment and defaults). Its token is never part of
	// the canonical form.
	Nomad *Nomad `json:"nomad,omitempty"`
	// Kubernetes is the kubernetes block: the cluster and namespace the
	// kubernetes executor uses (nil: KUBECONFIG and a namespace per pipeline).
	Kubernetes *Kubernetes `json:"kubernetes,omitempty"`
	// Backend is the backend block: where the state is kept (nil: the
	// default file). Its connection string is never part of the
	// canonical JSON.
	Backend *Backend `json:"backend,omitempty"`
	// Components in canonical order: by kind, then by ID.
	Components []*Component `json:"components"`

	// File is the path the pipeline was loaded from; Format is "yaml" or "hcl".
	File   string `json:"-"`
	Format string `json:"-"`
	// Variables declared (HCL only), for diagnostics and sensitivity.
	Variables []*Variable `json:"-"`
	// Ranges of pipeline-level attributes, by attribute name.
	Ranges map[string]hcl.Range `json:"-"`
}

// Variable is a declared HCL input variable and the value it took.
type Variable struct {
	Name        string
	Description string
	Sensitive   bool
	// Value rendered as HCL, for convert and for display (never printed when Sensitive).
	Value     string
	DeclRange hcl.Range
}

// Component is one source, processor or sink, fully normalised.
type Component struct {
	Kind     Kind   `json:"kind"`
	ID       string `json:"id"`
	Executor string `json:"executor"`
	// Type is the registry reference (`name@v1.2.3`) or a plain kind word,
	// as written; empty when not given.
	Type  string `json:"type,omitempty"`
	Image string `json:"image,omitempty"`
	// ImageID pins the local image Image must resolve to
	// ("sha256:<64 hex>"); checked before the container starts.
	ImageID string `json:"image_id,omitempty"`
	// Pull is the image pull policy of docker and nomad components:
	// PullAlways or PullNever. Empty means PullMissing, the default, so that
	// leaving it out and stating it hash the same (see PullPolicy).
	Pull string `json:"pull,omitempty"`
	// ImagePolicy is the signature the image must carry (image_policy,
	// the pipeline's when the component states none).
	ImagePolicy *ImagePolicy `json:"image_policy,omitempty"`
	// ImageDigest is the digest the image resolved to when the plan was
	// made, and ImageSignedBy the fingerprint of the key its signature was
	// verified with. Neither is written in a file: the executor fills them
	// in (providers.ImageResolver), so that the spec hash names the image
	// itself and a moved tag is a change plan shows.
	ImageDigest   string   `json:"image_digest,omitempty"`
	ImageSignedBy string   `json:"image_signed_by,omitempty"`
	Command       []string `json:"command,omitempty"`
	Args          []string `json:"args,omitempty"`
	// Env holds the user's environment, with registry-style config merged in
	// as upper-cased keys. Injected variables (docs/compat.md) are not part
	// of it.
	Env         map[string]EnvValue `json:"env,omitempty"`
	Inputs      []string            `json:"inputs,omitempty"`     // addresses, sorted
	DependsOn   []string            `json:"depends_on,omitempty"` // addresses, sorted
	Ports       []Port              `json:"ports,omitempty"`
	Volumes     []Volume            `json:"volumes,omitempty"`
	Resources   Resources           `json:"resources"`
	Health      *Health             `json:"health,omitempty"`
	Restart     Restart             `json:"restart"`
	StopTimeout Duration            `json:"stop_timeout"`
	Replicas    int                 `json:"replicas"`
	// Register says the component registers with the control plane: apply
	// then counts it ready only once registered and healthy. Setting
	// ENABLE_FLOWCTL=true in env says the same.
	Register bool `json:"register,omitempty"`
	// Auth is the component's own auth mode (AuthModes), stricter or
	// looser than the pipeline's; "" follows the pipeline's.
	Auth string `json:"auth,omitempty"`
	// ReadyTimeout bounds apply's wait for the component to be ready
	// (health probe and registration); 0 is DefaultReadyTimeout.
	ReadyTimeout Duration `json:"ready_timeout,omitempty"`
	// FixedPorts are the ports the component always listens on, whatever
	// PORT and HEALTH_PORT say (FixedPortNames): flowctl records and
	// injects them instead of allocating, and two process components with
	// one fixed port are an error.
	FixedPorts       map[string]int `json:"fixed_ports,omitempty"`
	Secrets          []string       `json:"secrets,omitempty"`
	InputEventTypes  []string       `json:"input_event_types,omitempty"`
	OutputEventTypes []string       `json:"output_event_types,omitempty"`

	// DeclRange is the component's block or list item; Ranges holds the
	// ranges of its attributes by name ("image", "inputs", "env.FOO",
	// "inputs.0", "health.port", ...), for diagnostics.
	DeclRange hcl.Range            `json:"-"`
	Ranges    map[string]hcl.Range `json:"-"`

	// Set by loaders when the file states a value whose zero is meaningful.
	maxRetriesSet     bool
	backoffInitialSet bool
}

// SetMaxRetries records an explicit max_retries (0 means "never retry").
func (c *Component) SetMaxRetries(n int) { c.Restart.MaxRetries, c.maxRetriesSet = n, true }

// SetBackoffInitial records an explicit initial backoff (0 means "at once").
func (c *Component) SetBackoffInitial(d Duration) {
	c.Restart.Backoff.Initial, c.backoffInitialSet = d, true
}

// PullPolicy is the component's effective pull policy: Pull, or
// PullMissing when it is empty.
func (c *Component) PullPolicy() string {
	if c.Pull == "" {
		return PullMissing
	}
	return c.Pull
}

// RunsImage reports whether the component's executor runs container images
// (docker, nomad, kubernetes, and process when it names only an image),
// to which image, image_id and pull apply.
func (c *Component) RunsImage() bool {
	return c.Executor == "docker" || c.Executor == "nomad" || c.Executor == ExecutorKubernetes || c.RunsImageAsProcess()
}

// Address is the component's address, KIND.ID.
func (c *Component) Address() string { return Address(c.Kind, c.ID) }

// Address joins a kind and an id into an address.
func Address(k Kind, id string) string { return string(k) + "." + id }

// ParseAddress splits KIND.ID; ok is false when addr is not of that form.
func ParseAddress(addr string) (k Kind, id string, ok bool) {
	kind, id, found := strings.Cut(addr, ".")
	if !found || !ValidKind(kind) || id == "" {
		return "", "", false
	}
	return Kind(kind), id, true
}

// Range returns the range of the named attribute, or the component's
// declaration range when the attribute has none recorded.
func (c *Component) Range(attr string) hcl.Range {
	if r, ok := c.Ranges[attr]; ok {
		return r
	}
	return c.DeclRange
}

// Upstreams returns the component's edges in the DAG, sorted and
// deduplicated: inputs, depends_on, and the components its env values
// reference (a reference needs its target applied first, as in Terraform).
func (c *Component) Upstreams() []string {
	seen := map[string]bool{}
	for _, list := range [][]string{c.Inputs, c.DependsOn, c.RefTargets()} {
		for _, a := range list {
			seen[a] = true
		}
	}
	return sortedKeys(seen)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// EnvValue is one environment value. A Deferred value contains references
// `${KIND.ID.ATTR}` that are known only after apply; a Sensitive value is
// never printed.
type EnvValue struct {
	Value     string `json:"value"`
	Sensitive bool   `json:"sensitive,omitempty"`
	Deferred  bool   `json:"deferred,omitempty"`
}

// Port is a published or declared port.
type Port struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int    `json:"container_port"`
	HostPort      int    `json:"host_port,omitempty"`
	HostIP        string `json:"host_ip,omitempty"`
	Protocol      string `json:"protocol"`
}

// Volume is a bind mount.
type Volume struct {
	Name          string `json:"name,omitempty"`
	HostPath      string `json:"host_path"`
	ContainerPath string `json:"container_path"`
	ReadOnly      bool   `json:"read_only,omitempty"`
}

// Resources holds CPU in millicores and memory in bytes; zero means unset.
type Resources struct {
	CPULimit      int64 `json:"cpu_limit_milli,omitempty"`
	MemoryLimit   int64 `json:"memory_limit_bytes,omitempty"`
	CPURequest    int64 `json:"cpu_request_milli,omitempty"`
	MemoryRequest int64 `json:"memory_request_bytes,omitempty"`
}

// Health is a readiness (and optionally liveness) probe.
type Health struct {
	Type string `json:"type"` // http, tcp or exec
	// Path is the HTTP path; URL is a full URL given by health_endpoint,
	// probed as is.
	Path             string   `json:"path,omitempty"`
	URL              string   `json:"url,omitempty"`
	Port             int      `json:"port,omitempty"` // 0: the component's HEALTH_PORT
	Command          []string `json:"command,omitempty"`
	Interval         Duration `json:"interval"`
	Timeout          Duration `json:"timeout"`
	StartPeriod      Duration `json:"start_period"`
	FailureThreshold int      `json:"failure_threshold"`
	SuccessThreshold int      `json:"success_threshold"`
	Liveness         bool     `json:"liveness,omitempty"`
}

// Restart is the restart policy the watcher applies.
type Restart struct {
	Policy     string  `json:"policy"`
	MaxRetries int     `json:"max_retries"` // UnlimitedRetries for no limit
	Backoff    Backoff `json:"backoff"`
	// Dependents: after the restart watcher restarts this component, it
	// restarts the components downstream of it too (restart_dependents).
	Dependents bool `json:"restart_dependents,omitempty"`
}

// Backoff is exponential backoff between restarts.
type Backoff struct {
	Initial    Duration `json:"initial"`
	Max        Duration `json:"max"`
	Multiplier float64  `json:"multiplier"`
}

// Duration is a time.Duration that renders as a Go duration string in JSON.
type Duration time.Duration

// D returns the standard library duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders the duration the way time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText renders the duration as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Component returns the component at addr, or nil.
func (p *Pipeline) Component(addr string) *Component {
	for _, c := range p.Components {
		if c.Address() == addr {
			return c
		}
	}
	return nil
}

// SortComponents puts components in canonical order: by kind, then by id.
func (p *Pipeline) SortComponents() {
	rank := map[Kind]int{KindSource: 0, KindProcessor: 1, KindSink: 2}
	sort.SliceStable(p.Components, func(i, j int) bool {
		a, b := p.Components[i], p.Components[j]
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		return a.ID < b.ID
	})
}
