// Package nomad runs pipeline components as Nomad jobs, through Nomad's
// HTTP API and its official client (github.com/hashicorp/nomad/api).
//
// # What a component becomes
//
// Each component is one service job, ID <pipeline>-<id>, with one group and
// one task, both named after the component (Job builds it; the golden
// files in testdata/jobs show whole jobs):
//
//   - the task driver is docker for an image (command replaces the image's
//     entrypoint, args its arguments; pull "always" is force_pull; volumes
//     are bind mounts) and raw_exec for a command (command[0] is the
//     program, the rest of command and args its arguments);
//   - the task's environment is exactly spec.Env; nothing of the CLI's is
//     passed, and FLOWCTL_ENDPOINT is not rewritten: the pipeline must set
//     an endpoint the cluster can reach (a loopback one is logged);
//   - resources: cpu in MHz (a core counts as 1000 MHz) and memory in MiB
//     are reserved from the request, or the limit when there is no
//     request; a memory limit above that becomes memory_max;
//   - ports: PORT and HEALTH_PORT are static ports (labels flowctl_port and
//     flowctl_health), the component's ports are static when they have a
//     host_port and dynamic otherwise; with docker each maps to the same
//     port in the container;
//   - health becomes a service (provider "nomad") with an http or tcp
//     check, and a liveness probe a check_restart; the group's update block
//     makes Nomad judge each allocation's health by that check (or by its
//     task running, without health);
//   - the restart policy becomes the group's restart and reschedule blocks
//     (see restartPolicy and reschedulePolicy), so the cluster restarts
//     its components itself;
//   - stop_timeout is the task's kill_timeout, with SIGTERM;
//   - replicas is the group's count;
//   - the job's meta says whose it is: flowctl-pipeline, flowctl-component,
//     flowctl-spec-hash, flowctl-lineage, flowctl-instance and
//     flowctl-ports, so that reality can be read back without a state file.
//
// # Lifecycle
//
// Start registers the job with EnforceIndex and index 0: Nomad refuses it
// when a job of that ID exists, so a job someone registered since the plan
// is never overwritten. The handle holds the job ID, its namespace and
// region and the job modify index; the fingerprint is the job modify
// index, so a job changed by anyone since a plan makes that plan stale.
// Stop deregisters the job, waits (up to the grace period) for its
// allocations to stop, and purges it.
//
// Observe reads the job and its allocations. A job that is neither stopped
// nor dead runs, as far as flowctl is concerned: Nomad is placing or
// starting it; but not while it crash-loops with no allocation running.
// Observed.Health is Nomad's verdict on the
// allocations (healthy once every one the group asks for runs and its
// checks pass) and is what apply waits for when the component has no
// probe of its own; Detail tells restarts, exit codes and crash loops.
// List finds the jobs of a pipeline by their meta, in the namespace the
// pipeline uses.
//
// # Connection
//
// The pipeline's nomad block (address, region, namespace, datacenters,
// token) wins, and the pipeline's own namespace stands in for a Nomad
// namespace the block leaves out; what is still missing comes from Nomad's
// environment
// (NOMAD_ADDR, NOMAD_REGION, NOMAD_NAMESPACE, NOMAD_TOKEN, NOMAD_CACERT,
// NOMAD_CAPATH, NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY, NOMAD_TLS_SERVER_NAME,
// NOMAD_SKIP_VERIFY), then Nomad's defaults (http://127.0.0.1:4646, every
// datacenter). The token is sent to Nomad and nowhere else: never logged,
// printed, or put in a handle. Creating a provider contacts nothing; an
// unreachable Nomad is an UnreachableError naming the address and where it
// came from.
package nomad

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Name is the executor name of this provider.
const Name = "nomad"

// DefaultAddress is Nomad's own default API address.
const DefaultAddress = "http://127.0.0.1:4646"

// defaultRequestTimeout bounds one API call.
const defaultRequestTimeout = 30 * time.Second

// Options configure the provider.
type Options struct {
	// Settings is the pipeline's nomad block; nil when it has none (or no
	// pipeline file is at hand).
	Settings *config.Nomad
	// PipelineNamespace is the pipeline's own namespace (metadata.namespace
	// in YAML): the Nomad namespace when the nomad block names none.
	PipelineNamespace string
	// Getenv reads Nomad's environment variables; nil means os.Getenv.
	Getenv func(string) string
	// RequestTimeout bounds each API call (default 30s); a slower answer is
	// an error that says so.
	RequestTimeout time.Duration
	// PollInterval is how often Stop and HealthHost look again (default
	// 250ms).
	PollInterval time.Duration
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

// Connection is where the provider finds Nomad and as whom.
type Connection struct {
	Address string
	// AddressFrom says where Address came from, for messages.
	AddressFrom string
	Region      string
	Namespace   string
	Datacenters []string
	TLS         api.TLSConfig
	token       string
}

// datacenters is what a job may be placed in: every datacenter unless the
// pipeline names some.
func (c Connection) datacenters() []string {
	if len(c.Datacenters) == 0 {
		return []string{"*"}
	}
	return append([]string(nil), c.Datacenters...)
}

// HasToken reports whether a token will be sent (never the token itself).
func (c Connection) HasToken() bool { return c.token != "" }

// ResolveConnection merges the pipeline's nomad block (and, for the
// namespace, the pipeline's own namespace) over Nomad's environment over
// Nomad's defaults.
func ResolveConnection(s *config.Nomad, pipelineNamespace string, getenv func(string) string) Connection {
	if getenv == nil {
		getenv = os.Getenv
	}
	if s == nil {
		s = &config.Nomad{}
	}
	c := Connection{Address: DefaultAddress, AddressFrom: "Nomad's default"}
	switch {
	case s.Address != "":
		c.Address, c.AddressFrom = s.Address, "the pipeline's nomad block"
	case getenv("NOMAD_ADDR") != "":
		c.Address, c.AddressFrom = getenv("NOMAD_ADDR"), "NOMAD_ADDR"
	}
	c.Region = pick(s.Region, getenv("NOMAD_REGION"))
	c.Namespace = pick(s.Namespace, pipelineNamespace, getenv("NOMAD_NAMESPACE"))
	c.token = pick(s.Token, getenv("NOMAD_TOKEN"))
	c.Datacenters = append([]string(nil), s.Datacenters...)
	c.TLS = api.TLSConfig{
		CACert:        getenv("NOMAD_CACERT"),
		CAPath:        getenv("NOMAD_CAPATH"),
		ClientCert:    getenv("NOMAD_CLIENT_CERT"),
		ClientKey:     getenv("NOMAD_CLIENT_KEY"),
		TLSServerName: getenv("NOMAD_TLS_SERVER_NAME"),
	}
	if v, err := strconv.ParseBool(getenv("NOMAD_SKIP_VERIFY")); err == nil {
		c.TLS.Insecure = v
	}
	return c
}

func pick(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Provider runs components as Nomad jobs.
type Provider struct {
	opts Options
	conn Connection
	log  *slog.Logger

	mu     sync.Mutex
	client *api.Client
}

var (
	_ providers.Provider           = (*Provider)(nil)
	_ providers.AddressResolver    = (*Provider)(nil)
	_ providers.HealthHostResolver = (*Provider)(nil)
	_ providers.Preflighter        = (*Provider)(nil)
)

// New returns a nomad provider. It contacts nothing.
func New(opts Options) *Provider {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = defaultRequestTimeout
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Provider{opts: opts, conn: ResolveConnection(opts.Settings, opts.PipelineNamespace, opts.Getenv), log: log.With("executor", Name)}
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// RestartsItself implements providers.SelfRestarter: the cluster restarts
// this executor's components by the restart and reschedule blocks flowctl
// gives their jobs, so the restart watcher only observes them.
func (p *Provider) RestartsItself() bool { return true }

// Connection is where the provider finds Nomad.
func (p *Provider) Connection() Connection { return p.conn }

// Close releases idle connections.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		p.client.Close()
		p.client = nil
	}
	return nil
}

// api returns the client, made on first use. Making it contacts nothing.
func (p *Provider) api() (*api.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	tls := p.conn.TLS
	cfg := &api.Config{
		Address:   p.conn.Address,
		Region:    p.conn.Region,
		Namespace: p.conn.Namespace,
		SecretID:  p.conn.token,
		TLSConfig: &tls,
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, &UnreachableError{Address: p.conn.Address, From: p.conn.AddressFrom, Err: err}
	}
	p.client = c
	return c, nil
}

// UnreachableError reports that Nomad's API could not be reached.
type UnreachableError struct {
	Address, From string
	Err           error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Nomad API at %s (%s): %v (is the address right? set nomad { address } in the pipeline, or NOMAD_ADDR)", e.Address, e.From, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// call runs one API call bounded by the request timeout, and turns a
// failure into an error that says what went wrong in the provider's terms.
func (p *Provider) call(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, p.opts.RequestTimeout)
	defer cancel()
	err := fn(cctx)
	if err == nil {
		return nil
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case cctx.Err() != nil:
		return fmt.Errorf("%s: Nomad at %s did not answer within %s", what, p.conn.Address, p.opts.RequestTimeout)
	case isNetError(err):
		return fmt.Errorf("%s: %w", what, &UnreachableError{Address: p.conn.Address, From: p.conn.AddressFrom, Err: err})
	case statusOf(err) == 403:
		return fmt.Errorf("%s: Nomad refused the request (403: %s); the ACL token (NOMAD_TOKEN or the pipeline's nomad.token) lacks a permission, or is missing", what, bodyOf(err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// read is call for idempotent reads: a 5xx answer is tried twice more.
func (p *Provider) read(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", what, ctx.Err())
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		err = p.call(ctx, what, fn)
		if s := statusOf(err); s < 500 || s > 599 {
			return err
		}
	}
	return err
}

func isNetError(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue)
}

// statusOf is the HTTP status of an API error, or 0.
func statusOf(err error) int {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) && ue.HasStatusCode() {
		return ue.StatusCode()
	}
	return 0
}

func bodyOf(err error) string {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) {
		return strings.TrimSpace(ue.Body())
	}
	return ""
}

func isNotFound(err error) bool { return statusOf(err) == 404 }

// queryOptions are the options of a read in namespace and region (the
// client's when empty).
func queryOptions(ctx context.Context, namespace, region string) *api.QueryOptions {
	return (&api.QueryOptions{Namespace: namespace, Region: region}).WithContext(ctx)
}

func writeOptions(ctx context.Context, namespace, region string) *api.WriteOptions {
	return (&api.WriteOptions{Namespace: namespace, Region: region}).WithContext(ctx)
}

// Preflight implements providers.Preflighter: Nomad answers (its leader is
// known), before an apply changes anything.
func (p *Provider) Preflight(ctx context.Context, components []*config.Component) error {
	if len(components) == 0 {
		return nil
	}
	c, err := p.api()
	if err != nil {
		return err
	}
	var leader string
	err = p.read(ctx, "nomad preflight", func(ctx context.Context) error {
		_, err := c.Raw().Query("/v1/status/leader", &leader, queryOptions(ctx, "", ""))
		return err
	})
	if err != nil {
		return err
	}
	if leader == "" {
		return fmt.Errorf("nomad: the cluster at %s has no leader: it cannot register jobs now", p.conn.Address)
	}
	return nil
}

// ComponentAddress implements providers.AddressResolver: host:port of the
// node that runs the component's allocation, as Nomad allocated its
// flowctl_port. Nomad may later move the allocation; downstream components
// keep the address they were started with until they are applied again.
// When no allocation runs yet, the job ID stands for the host (a name a
// cluster's DNS, such as Consul's, may resolve).
func (p *Provider) ComponentAddress(pipeline string, c *config.Component, port int) string {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.RequestTimeout)
	defer cancel()
	id := JobID(pipeline, c.ID)
	host, err := p.nodeAddress(ctx, handle{JobID: id, Namespace: p.conn.Namespace, Region: p.conn.Region}, LabelPort)
	if err != nil || host == "" {
		p.log.Warn("no running allocation to take the address of; using the job ID as the host", "job", id, "err", err)
		return net.JoinHostPort(id, strconv.Itoa(port))
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// warnLoopbackEndpoint logs a control-plane endpoint a Nomad task cannot
// reach: its loopback is its own.
func (p *Provider) warnLoopbackEndpoint(addr string, env map[string]string) {
	v := env[contract.EnvEndpoint]
	host, _, err := net.SplitHostPort(v)
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		p.log.Warn("the control-plane endpoint is a loopback address, which a Nomad task cannot reach; set FLOWCTL_ENDPOINT to an address the cluster can reach",
			"component", addr, "endpoint", v)
	}
}
