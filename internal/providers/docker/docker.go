// Package docker runs pipeline components as containers on a Docker Engine,
// through its API (github.com/docker/docker/client, with API version
// negotiation, so engines older than the client work).
//
// # What a component becomes
//
// Each pipeline gets a user-defined bridge network, flowctl-<pipeline>,
// created by the first Start and removed by the Stop that leaves no
// container of the pipeline behind. Each component is one container named
// <pipeline>-<id> on that network, with the engine's restart policy "no"
// (restarts are flowctl's business), labelled:
//
//	io.flowctl.pipeline   the pipeline name (List finds containers by it)
//	io.flowctl.component  the component's address, KIND.ID
//	io.flowctl.spec-hash  the spec hash it was started with
//	io.flowctl.lineage    the lineage of the state that started it
//	io.flowctl.instance   the instance ID
//	io.flowctl.ports      PORT and HEALTH_PORT, as "HEALTH_PORT=8081,PORT=9000"
//
// so that reality can be read back without any state file.
//
// The container gets exactly spec.Env, but for one translation: a
// FLOWCTL_ENDPOINT on a loopback host (127.0.0.1, localhost, ::1, 0.0.0.0)
// is rewritten to host.docker.internal, which every container resolves to
// the host (ExtraHosts host.docker.internal:host-gateway): the control plane
// runs on the host, and a container's loopback is its own. Nothing of the
// CLI's environment is passed.
//
// Command and args follow Kubernetes and the flowctl/v1 format: command, if
// set, replaces the image's ENTRYPOINT, and the image's CMD is then dropped
// (the engine's rule); args, if set, replace the image's CMD. With neither,
// the image runs as built.
//
// Ports: each port is exposed on the network as containerPort/protocol; one
// with a host_port is also published on the host, at host_ip (127.0.0.1
// unless the pipeline names another: normalisation fills it in). Volumes are
// bind mounts, read-only when read_only is set; a relative host path
// resolves against spec.WorkDir, the pipeline file's folder. Resources: the
// cpu limit in millicores becomes NanoCPUs, the memory limit Memory, the
// memory request MemoryReservation and the cpu request CPUShares (1024 per
// core). stop_timeout becomes the container's StopTimeout (whole seconds,
// rounded up).
//
// # Addresses and health
//
// Components reach each other by container name on the pipeline network:
// ComponentAddress is <pipeline>-<id>:<port>. Health probes run from the
// host against the container's address on that network (HealthHost). A
// component without a probe whose image has a HEALTHCHECK reports its
// status in Observed.Health, and the engine waits for "healthy".
//
// # Images
//
// An image is pulled only as the component's pull policy says: "missing"
// (the default) pulls when the engine does not have it, "always" before
// starting it (once per apply: a pull or a check is trusted for a minute),
// "never" not at all. An image named by digest (repo@sha256:…)
// is looked up by that digest; image_id must equal the local image's ID,
// and the container is then created from that very ID. Preflight checks all
// of that for a whole apply before anything starts.
//
// # The engine
//
// The client is made on first use, from DOCKER_HOST (default
// unix:///var/run/docker.sock) and the other DOCKER_* variables, and the
// engine is pinged once: creating a provider never fails, and commands that
// use no docker component never touch the engine. An unreachable engine is
// an EngineUnreachableError that names the socket.
package docker

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
)

// Name is the executor name of this provider.
const Name = "docker"

// Labels set on every container (and, for the pipeline, on the network).
const (
	LabelPipeline  = "io.flowctl.pipeline"
	LabelComponent = "io.flowctl.component"
	LabelSpecHash  = "io.flowctl.spec-hash"
	LabelLineage   = "io.flowctl.lineage"
	LabelInstance  = "io.flowctl.instance"
	// LabelPorts holds the PORT and HEALTH_PORT the container was started
	// with ("HEALTH_PORT=8081,PORT=9000"), so that List can tell them.
	LabelPorts = "io.flowctl.ports"
)

// HostGateway is the name containers reach the host by.
const HostGateway = "host.docker.internal"

// pingTimeout bounds the first contact with the engine.
const pingTimeout = 10 * time.Second

// Options configure the provider.
type Options struct {
	// Host is the engine's address (unix:///var/run/docker.sock,
	// tcp://host:2376); empty means DOCKER_HOST, then the default socket.
	Host string
	// LogDir is where the last lines of each component's removed
	// containers are kept (the state folder's logs/); empty keeps none.
	LogDir string
}

// Provider runs components as Docker containers.
type Provider struct {
	opts Options

	mu  sync.Mutex
	cli *client.Client
	// contacted is closed once a client has reached the engine (WatchEnds
	// waits for it: a pipeline without docker components never makes the
	// watcher touch the engine).
	contactedOnce, markContacted sync.Once
	contacted                    chan struct{}

	// netMu orders network removal after starts: a Start holds it for
	// reading from ensuring the network to starting the container, the
	// removal of an unused network for writing.
	netMu sync.RWMutex
	// networks caches the IDs of pipeline networks this process made or
	// found, by pipeline; netCreateMu serialises their creation.
	networks    sync.Map
	netCreateMu sync.Mutex

	// images holds what this process knows of each image reference.
	images sync.Map // ref -> *imageEntry

	// attested caches the addresses of containers AttestPeer looked at,
	// by container ID (see attest.go).
	attested sync.Map

	// archiveMu serialises the rewrites of log archives (logarchive.go).
	archiveMu sync.Mutex
}

var (
	_ providers.Provider           = (*Provider)(nil)
	_ providers.AddressResolver    = (*Provider)(nil)
	_ providers.HealthHostResolver = (*Provider)(nil)
	_ providers.Preflighter        = (*Provider)(nil)
	_ providers.ReplaceStopper     = (*Provider)(nil)
)

// New returns a docker provider. It does not contact the engine.
func New(opts Options) *Provider { return &Provider{opts: opts} }

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// Close releases the client, if one was made.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cli == nil {
		return nil
	}
	err := p.cli.Close()
	p.cli = nil
	return err
}

// ContainerName is the container of component id in pipeline.
func ContainerName(pipeline, id string) string { return pipeline + "-" + id }

// NetworkName is the pipeline's network.
func NetworkName(pipeline string) string { return "flowctl-" + pipeline }

// EngineUnreachableError reports that the Docker engine could not be reached.
type EngineUnreachableError struct {
	// Host is the engine address tried; Source says where it came from.
	Host, Source string
	Err          error
}

func (e *EngineUnreachableError) Error() string {
	return fmt.Sprintf("docker: cannot reach the Docker engine at %s (%s): %v (is dockerd running? DOCKER_HOST selects another engine)", e.Host, e.Source, e.Err)
}

func (e *EngineUnreachableError) Unwrap() error { return e.Err }

// engineHost says which engine address the client uses, and why.
func (p *Provider) engineHost() (host, source string) {
	switch {
	case p.opts.Host != "":
		return p.opts.Host, "configured"
	case os.Getenv(client.EnvOverrideHost) != "":
		return os.Getenv(client.EnvOverrideHost), "from DOCKER_HOST"
	}
	return client.DefaultDockerHost, "the default socket"
}

// api returns the client, making it and pinging the engine on first use.
// A failure is not remembered: the next call tries again.
func (p *Provider) api(ctx context.Context) (*client.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cli != nil {
		return p.cli, nil
	}
	host, source := p.engineHost()
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if p.opts.Host != "" {
		opts = append(opts, client.WithHost(p.opts.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, &EngineUnreachableError{Host: host, Source: source, Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		_ = cli.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &EngineUnreachableError{Host: host, Source: source, Err: pingError(host, err)}
	}
	p.cli = cli
	p.markContacted.Do(func() { close(p.contactedChan()) })
	return cli, nil
}

// contactedChan is closed once the provider has reached the engine.
func (p *Provider) contactedChan() chan struct{} {
	p.contactedOnce.Do(func() { p.contacted = make(chan struct{}) })
	return p.contacted
}

// pingError finds the cause of a failed ping: the client reports a failed
// connection in words of its own ("Cannot connect to the Docker daemon at
// …"), so the connection is made once more to learn why.
func pingError(host string, err error) error {
	if !client.IsErrConnectionFailed(err) {
		return err
	}
	scheme, addr, ok := strings.Cut(host, "://")
	if !ok || (scheme != "unix" && scheme != "tcp") {
		return err
	}
	conn, derr := net.DialTimeout(scheme, addr, 2*time.Second)
	if derr != nil {
		return derr
	}
	_ = conn.Close()
	return err
}

// ComponentAddress implements providers.AddressResolver: components reach
// each other by container name on the pipeline network.
func (p *Provider) ComponentAddress(pipeline string, c *config.Component, port int) string {
	return fmt.Sprintf("%s:%d", ContainerName(pipeline, c.ID), port)
}
