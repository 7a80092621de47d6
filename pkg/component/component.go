// Package component is a small SDK for writing flowctl pipeline components
// in Go. It does what a component needs to do to run well under flowctl
// (see COMPAT.md of the flowctl ecosystem):
//
//   - reads the environment flowctl gives every component (Config,
//     FromEnv): its id, the control-plane endpoint, its token, its ports;
//   - serves GET /health on HEALTH_PORT (200 when healthy, 503 otherwise);
//   - registers with the control plane (protocol flowctl.v1) with its
//     token, blocking until the control plane answers, as the public SDK
//     does; keeps the fresh token the control plane hands out when the
//     current one is past half its life; and heartbeats at
//     FLOWCTL_HEARTBEAT_INTERVAL;
//   - on Close (call it when SIGTERM arrives), unregisters and stops.
//
// A component with ENABLE_FLOWCTL unset or not "true" runs without a
// control plane: nothing registers, /health is still served.
//
//	c, err := component.New(component.FromEnv(), component.Info{Type: component.Source, Name: "counter"})
//	...
//	if err := c.Start(ctx); err != nil { ... } // registered; /health answers
//	defer c.Close(context.Background())
//	c.SetHealthy(true)
package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// Kinds of component, as the control plane knows them.
const (
	Source    = flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE
	Processor = flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR
	Sink      = flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER
)

// Metadata keys and connection_info keys of the control plane (flowctl's
// controlplane package documents them).
const (
	mdAuthorization  = "authorization"
	mdRefreshedToken = "flowctl-token"
	connInfoToken    = "flowctl_token"
)

// DefaultHeartbeat is the heartbeat interval when the environment sets none.
const DefaultHeartbeat = 10 * time.Second

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
	// data port.
	HealthPort, Port int
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
		ID:       first("FLOWCTL_COMPONENT_ID", "COMPONENT_ID", "SERVICE_ID", "FLOWCTL_SERVICE_ID"),
		Enabled:  strings.EqualFold(os.Getenv("ENABLE_FLOWCTL"), "true"),
		Endpoint: first("FLOWCTL_ENDPOINT"),
		Token:    first("FLOWCTL_COMPONENT_TOKEN", "COMPONENT_TOKEN"),
	}
	if c.Endpoint == "" {
		c.Endpoint = "localhost:8080"
	}
	if d, err := time.ParseDuration(os.Getenv("FLOWCTL_HEARTBEAT_INTERVAL")); err == nil && d > 0 {
		c.Heartbeat = d
	}
	c.HealthPort, _ = strconv.Atoi(os.Getenv("HEALTH_PORT"))
	c.Port, _ = strconv.Atoi(os.Getenv("PORT"))
	return c
}

// Info describes the component to the control plane.
type Info struct {
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

	conn     *grpc.ClientConn
	client   flowctlv1.ControlPlaneServiceClient
	health   *http.Server
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Option adjusts a Component.
type Option func(*Component)

// WithLogger sends the component's own messages to l (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(c *Component) { c.log = l } }

// New prepares a component; Start runs it.
func New(cfg Config, info Info, opts ...Option) (*Component, error) {
	if cfg.ID == "" && cfg.Enabled {
		return nil, errors.New("component: no id (FLOWCTL_COMPONENT_ID)")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	c := &Component{cfg: cfg, info: info, token: cfg.Token, metrics: map[string]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
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

// Start serves /health and, when Enabled, registers with the control plane
// (waiting as long as ctx allows for it to answer) and starts heartbeating.
func (c *Component) Start(ctx context.Context) error {
	if c.cfg.HealthPort > 0 {
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(c.cfg.HealthPort)))
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
		close(c.done)
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
	go c.heartbeats()
	return nil
}

func (c *Component) callCtx(ctx context.Context) context.Context {
	if t := c.Token(); t != "" {
		return metadata.AppendToOutgoingContext(ctx, mdAuthorization, "Bearer "+t)
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
	if c.cfg.Port > 0 {
		req.Component.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.cfg.Port))
	}
	resp, err := c.client.RegisterComponent(c.callCtx(ctx), req, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("component: register with %s: %w", c.cfg.Endpoint, err)
	}
	c.mu.Lock()
	c.serviceID = resp.GetServiceId()
	if t := resp.GetConnectionInfo()[connInfoToken]; t != "" {
		c.token = t
	}
	c.mu.Unlock()
	c.log.Info("registered", "service_id", resp.GetServiceId(), "endpoint", c.cfg.Endpoint)
	return nil
}

func (c *Component) heartbeats() {
	defer close(c.done)
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
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Heartbeat)
	defer cancel()
	var header metadata.MD
	if _, err := c.client.Heartbeat(c.callCtx(ctx), req, grpc.Header(&header)); err != nil {
		c.log.Warn("heartbeat", "err", err)
		return
	}
	if v := header.Get(mdRefreshedToken); len(v) > 0 && v[0] != "" {
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
	<-c.done
}

// Close stops heartbeating, unregisters and stops the health server.
func (c *Component) Close(ctx context.Context) error {
	c.StopHeartbeats()
	var errs []error
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
