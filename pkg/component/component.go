// Package component is a small SDK for writing flowctl pipeline components
// in Go. It does what a component needs to do to run well under flowctl
// (docs/compat.md describes that contract; pkg/contract names it):
//
//   - reads the environment flowctl gives every component (Config,
//     FromEnv): its id, the control-plane endpoint, its token, its ports,
//     its state folder;
//   - serves the data-plane gRPC service of its kind on PORT, on the
//     address FLOWCTL_BIND_ADDRESS names (127.0.0.1 when unset), and
//     refuses every call that does not carry a data token flowctl signed
//     (FLOWCTL_DATA_PLANE_KEY verifies it; see DataVerifier): an
//     EventSource answers SourceService (StreamEvents, GetState/SaveState
//     backed by a Store), an EventProcessor answers
//     ProcessorService.Process, an EventSink answers
//     ConsumerService.Consume; flowctl calls them and moves the events;
//   - serves GET /health on HEALTH_PORT, same address (200 when healthy,
//     503 otherwise);
//   - registers with the control plane (protocol flowctl.v1) with its
//     token and its data endpoint, blocking until the control plane
//     answers, as the public SDK does; keeps the fresh token the control
//     plane hands out when the current one is past half its life; and
//     heartbeats at FLOWCTL_HEARTBEAT_INTERVAL;
//   - on Close (Run calls it when SIGTERM arrives), stops the data plane,
//     unregisters and stops.
//
// A component with ENABLE_FLOWCTL unset or not "true" runs without a
// control plane: nothing registers; /health and the data plane are still
// served.
//
// A component with a data plane and no FLOWCTL_DATA_PLANE_KEY does not
// start: it could tell no caller from another. To run one by hand, outside
// flowctl, set FLOWCTL_DATA_PLANE_INSECURE=true (or WithInsecureDataPlane):
// it then accepts every caller, and says so in its log.
//
// Backpressure is gRPC flow control and nothing else: the SDK holds no
// queue. A source's Emit blocks while its reader is behind, a processor
// reads its next input only once the outputs of the last are sent, and a
// sink reads as fast as Consume returns. Windows are static (DataStreamWindow
// per stream), so what a slow reader leaves in flight stays bounded.
//
// Delivery is at-least-once, by positions. Every event a source emits
// carries its position in Metadata[ResumeTokenKey], and a processor's
// outputs inherit it. A sink answers a Consume stream only when it ends
// and after a flush, so the answer says its events are durable: whoever
// moves the events (flowctl's relay) then commits the position of the last
// one with SourceService.SaveState({ResumeTokenKey: position}), kept in the
// source's Store across restarts. StreamEvents with resume=true (or with
// resume_token set) continues right after the committed position; what
// came after it may arrive twice, so sinks de-duplicate by event id.
//
// A component is a main that builds one handler and runs it:
//
//	src := component.SourceFunc(func(ctx context.Context, req component.StreamRequest, emit component.Emit) error { ... })
//	c, err := component.New(component.FromEnv(), component.Info{Name: "counter"}, component.WithSource(src))
//	...
//	if err := c.Run(context.Background()); err != nil { ... } // until SIGTERM
//
// Start, SetHealthy and Close are the same steps one at a time, for
// components that need to do something in between.
package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/flowctl/flowctl/pkg/contract"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// Kinds of component, as the control plane knows them.
const (
	Source    = flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE
	Processor = flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR
	Sink      = flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER
)

// DefaultHeartbeat is the heartbeat interval when the environment sets none.
const DefaultHeartbeat = contract.DefaultHeartbeatInterval

// Config is what a component learns from its environment.
type Config struct {
	// ID is FLOWCTL_COMPONENT_ID (or COMPONENT_ID, SERVICE_ID).
	ID string
	// Enabled is ENABLE_FLOWCTL=true: register with the control plane.
	Enabled bool
	// Endpoint is FLOWCTL_ENDPOINT (default localhost:8080).
	Endpoint string
	// Token is FLOWCTL_COMPONENT_TOKEN (or COMPONENT_TOKEN).
	Token string
	// Heartbeat is FLOWCTL_HEARTBEAT_INTERVAL.
	Heartbeat time.Duration
	// HealthPort is HEALTH_PORT (0: no health server); Port is PORT, the
	// data port (0: a component with a data plane listens on an ephemeral
	// port of 127.0.0.1, see DataAddr).
	HealthPort, Port int
	// StateDir is FLOWCTL_STATE_DIR, the folder of the component's Store
	// (DefaultStateDir when empty).
	StateDir string
	// BindAddress is FLOWCTL_BIND_ADDRESS, the IP address the data and
	// health ports listen on (contract.DefaultBindAddress, 127.0.0.1, when
	// empty).
	BindAddress string
	// DataPlaneKey is FLOWCTL_DATA_PLANE_KEY, the public key that verifies
	// the callers' data tokens (ParseDataPlaneKey).
	DataPlaneKey string
	// Pipeline is FLOWCTL_PIPELINE: data tokens of other pipelines are
	// refused.
	Pipeline string
	// InsecureDataPlane is FLOWCTL_DATA_PLANE_INSECURE=true: with no
	// DataPlaneKey, serve the data plane to any caller.
	InsecureDataPlane bool
}

// FromEnv reads Config from the process environment.
func FromEnv() Config {
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := os.Getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	c := Config{
		ID:       first(contract.EnvComponentID, contract.EnvPlainComponentID, contract.EnvPlainServiceID, contract.EnvServiceID),
		Enabled:  strings.EqualFold(os.Getenv(contract.EnvEnableFlowctl), "true"),
		Endpoint: first(contract.EnvEndpoint),
		Token:    first(contract.EnvComponentToken, contract.EnvPlainComponentToken),
		StateDir: os.Getenv(contract.EnvStateDir),

		BindAddress:       os.Getenv(contract.EnvBindAddress),
		DataPlaneKey:      os.Getenv(contract.EnvDataPlaneKey),
		Pipeline:          os.Getenv(contract.EnvPipeline),
		InsecureDataPlane: strings.EqualFold(os.Getenv(contract.EnvDataPlaneInsecure), "true"),
	}
	if c.Endpoint == "" {
		c.Endpoint = contract.DefaultEndpoint
	}
	if d, err := time.ParseDuration(os.Getenv(contract.EnvHeartbeatInterval)); err == nil && d > 0 {
		c.Heartbeat = d
	}
	c.HealthPort, _ = strconv.Atoi(os.Getenv(contract.EnvHealthPort))
	c.Port, _ = strconv.Atoi(os.Getenv(contract.EnvPort))
	return c
}

// Info describes the component to the control plane.
type Info struct {
	// Type may be left zero when the component has a data-plane handler
	// (WithSource, WithProcessor, WithSink): it follows the handler.
	Type             flowctlv1.ComponentType
	Name             string
	Description      string
	Version          string
	InputEventTypes  []string
	OutputEventTypes []string
	Metadata         map[string]string
}

// Component is a running component's link to flowctl.
type Component struct {
	cfg  Config
	info Info
	log  *slog.Logger

	mu        sync.Mutex
	token     string
	serviceID string
	healthy   bool
	metrics   map[string]string

	conn   *grpc.ClientConn
	client flowctlv1.ControlPlaneServiceClient
	health *http.Server

	// stop is closed by StopHeartbeats; hbDone is closed when the heartbeat
	// loop ends, and stays nil (under mu) when it never started.
	stop     chan struct{}
	stopOnce sync.Once
	hbDone   chan struct{}

	// The data plane: at most one handler is set.
	source    EventSource
	processor EventProcessor
	sink      EventSink
	sinkMu    sync.Mutex // serialises EventSink calls
	data      *grpc.Server
	dataLis   net.Listener
	verifier  *DataVerifier

	eventsIn, eventsOut, eventsFailed atomic.Int64

	storeOnce sync.Once
	store     *Store
	storeErr  error

	closeOnce sync.Once
	closeErr  error
}

// Option adjusts a Component.
type Option func(*Component)

// WithLogger sends the component's own messages to l (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(c *Component) { c.log = l } }

// WithSource makes the component a source serving SourceService with s.
func WithSource(s EventSource) Option { return func(c *Component) { c.source = s } }

// WithProcessor makes the component a processor serving ProcessorService
// with p.
func WithProcessor(p EventProcessor) Option { return func(c *Component) { c.processor = p } }

// WithSink makes the component a sink serving ConsumerService with s.
func WithSink(s EventSink) Option { return func(c *Component) { c.sink = s } }

// WithDataVerifier checks the callers of the data plane with v rather than
// with the verifier of Config.DataPlaneKey.
func WithDataVerifier(v *DataVerifier) Option { return func(c *Component) { c.verifier = v } }

// WithInsecureDataPlane serves the data plane to any caller when no
// verifier is set (Config.InsecureDataPlane does the same): for tests and
// for running a component by hand, never under flowctl.
func WithInsecureDataPlane() Option { return func(c *Component) { c.cfg.InsecureDataPlane = true } }

// New prepares a component; Start (or Run) runs it. It fails when the
// component has more than one data-plane handler, or one that disagrees
// with info.Type.
func New(cfg Config, info Info, opts ...Option) (*Component, error) {
	if cfg.ID == "" && cfg.Enabled {
		return nil, errors.New("component: no id (FLOWCTL_COMPONENT_ID)")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	c := &Component{cfg: cfg, info: info, token: cfg.Token, metrics: map[string]string{},
		stop: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var kinds []flowctlv1.ComponentType
	if c.source != nil {
		kinds = append(kinds, Source)
	}
	if c.processor != nil {
		kinds = append(kinds, Processor)
	}
	if c.sink != nil {
		kinds = append(kinds, Sink)
	}
	switch {
	case len(kinds) > 1:
		return nil, fmt.Errorf("component: more than one data-plane handler (%v)", kinds)
	case len(kinds) == 1 && c.info.Type == flowctlv1.ComponentType_COMPONENT_TYPE_UNSPECIFIED:
		c.info.Type = kinds[0]
	case len(kinds) == 1 && c.info.Type != kinds[0]:
		return nil, fmt.Errorf("component: info type %v but a %v handler", c.info.Type, kinds[0])
	}
	if c.verifier == nil {
		v, err := c.cfg.DataVerifier()
		if err != nil {
			return nil, err
		}
		c.verifier = v
	}
	if len(kinds) == 1 && c.verifier == nil && !c.cfg.InsecureDataPlane {
		return nil, fmt.Errorf("component: no %s to verify the callers of the data plane with; flowctl sets it for the components it runs (to run this one by hand, accepting any caller, set %s=true)",
			contract.EnvDataPlaneKey, contract.EnvDataPlaneInsecure)
	}
	return c, nil
}

// SetHealthy sets what /health answers and what heartbeats report.
func (c *Component) SetHealthy(ok bool) {
	c.mu.Lock()
	c.healthy = ok
	c.mu.Unlock()
}

// SetMetric sets a metric sent with the next heartbeats.
func (c *Component) SetMetric(name, value string) {
	c.mu.Lock()
	c.metrics[name] = value
	c.mu.Unlock()
}

// ServiceID is the id the control plane assigned ("" before registering).
func (c *Component) ServiceID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serviceID
}

// Token is the component's current token (refreshed ones replace the
// original).
func (c *Component) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// Store returns the component's state store, opened at StatePath on first
// use. SourceService.GetState and SaveState use it.
func (c *Component) Store() (*Store, error) {
	c.storeOnce.Do(func() {
		c.store, c.storeErr = OpenStore(StatePath(c.cfg, c.info.Name))
	})
	return c.store, c.storeErr
}

// DataAddr is the address (host:port) the data plane answers on, as dialled
// from this host; "" when the component has no data plane or before Start.
func (c *Component) DataAddr() string {
	if c.dataLis == nil {
		return ""
	}
	_, port, err := net.SplitHostPort(c.dataLis.Addr().String())
	if err != nil {
		return c.dataLis.Addr().String()
	}
	return net.JoinHostPort(c.dialHost(), port)
}

// endpoint is the data endpoint the component registers.
func (c *Component) endpoint() string {
	if a := c.DataAddr(); a != "" {
		return a
	}
	if c.cfg.Port > 0 {
		return net.JoinHostPort(c.dialHost(), strconv.Itoa(c.cfg.Port))
	}
	return ""
}

// bindHost is the IP address the ports listen on.
func (c *Component) bindHost() string {
	if c.cfg.BindAddress != "" {
		return c.cfg.BindAddress
	}
	return contract.DefaultBindAddress
}

// dialHost is how this host reaches the bind address: loopback for the
// unspecified address.
func (c *Component) dialHost() string {
	h := c.bindHost()
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return h
}

// Start serves the data plane (when the component has a handler) and
// /health and, when Enabled, registers with the control plane (waiting as
// long as ctx allows for it to answer) and starts heartbeating. The data
// plane and the health server listen on the bind address
// (Config.BindAddress, 127.0.0.1 when empty): the data plane on PORT, or,
// when PORT is 0, on an ephemeral port. After a failed Start, call Close to
// release what was started.
func (c *Component) Start(ctx context.Context) error {
	if srv := c.newDataServer(); srv != nil {
		if c.verifier == nil {
			c.log.Warn("data plane serves any caller: no data-plane key (" + contract.EnvDataPlaneInsecure + "=true)")
		}
		l, err := net.Listen("tcp", net.JoinHostPort(c.bindHost(), strconv.Itoa(c.cfg.Port)))
		if err != nil {
			return fmt.Errorf("component: data plane: %w", err)
		}
		c.data, c.dataLis = srv, l
		go func() { _ = srv.Serve(l) }()
		c.log.Info("data plane listening", "addr", c.DataAddr(), "kind", c.info.Type.String())
	}
	if c.cfg.HealthPort > 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(c.bindHost(), strconv.Itoa(c.cfg.HealthPort)))
		if err != nil {
			return fmt.Errorf("component: health server: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
			c.mu.Lock()
			ok := c.healthy
			c.mu.Unlock()
			if !ok {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		c.health = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = c.health.Serve(l) }()
	}
	if !c.cfg.Enabled {
		return nil
	}
	conn, err := grpc.NewClient(c.cfg.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("component: control plane %s: %w", c.cfg.Endpoint, err)
	}
	c.conn, c.client = conn, flowctlv1.NewControlPlaneServiceClient(conn)
	if err := c.register(ctx); err != nil {
		return err
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.hbDone = done
	c.mu.Unlock()
	go c.heartbeats(done)
	return nil
}

func (c *Component) callCtx(ctx context.Context) context.Context {
	if t := c.Token(); t != "" {
		return metadata.AppendToOutgoingContext(ctx, contract.AuthorizationHeader, contract.AuthorizationScheme+" "+t)
	}
	return ctx
}

// register blocks until the control plane answers (gRPC wait-for-ready).
func (c *Component) register(ctx context.Context) error {
	req := &flowctlv1.RegisterRequest{
		ComponentId: c.cfg.ID,
		Component: &flowctlv1.ComponentInfo{
			Id: c.cfg.ID, Name: c.info.Name, Description: c.info.Description, Version: c.info.Version,
			Type: c.info.Type, InputEventTypes: c.info.InputEventTypes, OutputEventTypes: c.info.OutputEventTypes,
			Metadata: c.info.Metadata,
		},
	}
	req.Component.Endpoint = c.endpoint()
	resp, err := c.client.RegisterComponent(c.callCtx(ctx), req, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("component: register with %s: %w", c.cfg.Endpoint, err)
	}
	c.mu.Lock()
	c.serviceID = resp.GetServiceId()
	if t := resp.GetConnectionInfo()[contract.ConnectionInfoToken]; t != "" {
		c.token = t
	}
	c.mu.Unlock()
	c.log.Info("registered", "service_id", resp.GetServiceId(), "endpoint", c.cfg.Endpoint)
	return nil
}

func (c *Component) heartbeats(done chan struct{}) {
	defer close(done)
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		c.heartbeat()
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

func (c *Component) heartbeat() {
	c.mu.Lock()
	status := flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY
	if !c.healthy {
		status = flowctlv1.HealthStatus_HEALTH_STATUS_STARTING
	}
	req := &flowctlv1.HeartbeatRequest{ServiceId: c.serviceID, Status: status, Metrics: make(map[string]string, len(c.metrics))}
	for k, v := range c.metrics {
		req.Metrics[k] = v
	}
	c.mu.Unlock()
	c.statMetrics(req.Metrics)
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Heartbeat)
	defer cancel()
	var header metadata.MD
	if _, err := c.client.Heartbeat(c.callCtx(ctx), req, grpc.Header(&header)); err != nil {
		c.log.Warn("heartbeat", "err", err)
		return
	}
	if v := header.Get(contract.RefreshedTokenHeader); len(v) > 0 && v[0] != "" {
		c.mu.Lock()
		c.token = v[0]
		c.mu.Unlock()
	}
}

// StopHeartbeats stops heartbeating and leaves the registration in place:
// the control plane then sees the component as silent (tests of liveness
// by heartbeat use it).
func (c *Component) StopHeartbeats() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.mu.Lock()
	done := c.hbDone
	c.mu.Unlock()
	if done != nil {
		<-done
	}
}

// ShutdownGrace bounds how long Run's Close may take.
const ShutdownGrace = 10 * time.Second

// Run starts the component, marks it healthy and serves until ctx ends or
// SIGTERM or SIGINT arrives; then it closes the component (within
// ShutdownGrace). A signal during Start (still waiting for the control
// plane) is a clean stop too.
func (c *Component) Run(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	closeGrace := func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
		defer cancel()
		return c.Close(cctx)
	}
	if err := c.Start(ctx); err != nil {
		cerr := closeGrace()
		if ctx.Err() != nil {
			return nil
		}
		return errors.Join(err, cerr)
	}
	c.SetHealthy(true)
	c.log.Info("running", "id", c.cfg.ID, "kind", c.info.Type.String(), "data", c.DataAddr())
	<-ctx.Done()
	c.log.Info("stopping")
	return closeGrace()
}

// Close stops the data plane (open streams end; a sink is flushed first),
// stops heartbeating, unregisters and stops the health server. Calls after
// the first return the first's result.
func (c *Component) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.close(ctx) })
	return c.closeErr
}

func (c *Component) close(ctx context.Context) error {
	c.SetHealthy(false)
	var errs []error
	if c.data != nil {
		// Stop, not GracefulStop: data streams never end by themselves.
		// Stop cancels them and, with WaitForHandlers, returns once every
		// handler did (a sink has flushed); a handler that ignores its
		// context is left behind when ctx ends.
		stopped := make(chan struct{})
		go func() {
			c.data.Stop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("component: data plane handlers still running: %w", ctx.Err()))
		}
	}
	c.StopHeartbeats()
	if c.client != nil && c.ServiceID() != "" {
		uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.client.UnregisterComponent(c.callCtx(uctx), &flowctlv1.UnregisterRequest{ServiceId: c.ServiceID()})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("unregister: %w", err))
		}
	}
	if c.conn != nil {
		errs = append(errs, c.conn.Close())
	}
	if c.health != nil {
		errs = append(errs, c.health.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
