package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sort"

	"github.com/flowctl/flowctl/internal/attest"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Security is `flowctl status --security`: what a pipeline exposes, to
// whom, and what proves who talks to it. It is read from the same facts as
// the status report (the state, its serve record and registry, the
// executors) plus the kernel's table of listening sockets.
type Security struct {
	Pipeline  string `json:"pipeline"`
	StateFile string `json:"state_file"`
	// ControlPlaneRunning: a serve runs for the state file; its listeners
	// are then open.
	ControlPlaneRunning bool `json:"control_plane_running"`
	// AuthMode is the control plane's: required, token or permissive.
	AuthMode string `json:"auth_mode,omitempty"`
	// DockerGateway says whether and why the control plane listens on
	// the Docker bridge's gateway, or why not.
	DockerGateway string `json:"docker_gateway,omitempty"`
	// Listeners are every socket flowctl's control plane opened.
	Listeners []Listener `json:"listeners"`
	// Ports are the components' data and health ports.
	Ports []PortExposure `json:"component_ports"`
	// Unproven are registrations no token or attestation proves.
	Unproven []UnprovenRegistration `json:"unproven_registrations"`
	// Findings are what deserves a look, worded for people.
	Findings []string `json:"findings"`
}

// Listener is one socket the control plane listens on.
type Listener struct {
	// Service is what answers there: grpc (the component protocols),
	// grpc-docker-gateway, or http (/healthz, /metrics, /v1/status).
	Service string `json:"service"`
	Address string `json:"address"`
	// Reach says who can connect, from the address alone.
	Reach string `json:"reach"`
	// Auth says what a caller must show.
	Auth string `json:"auth"`
	TLS  bool   `json:"tls"`
}

// PortExposure is one port flowctl gave a component.
type PortExposure struct {
	Component string `json:"component"`
	Executor  string `json:"executor"`
	// Name is the variable it was given as (PORT, HEALTH_PORT).
	Name string `json:"name"`
	Port int    `json:"port"`
	// BoundTo are the addresses a socket on this machine listens on for
	// the port (from /proc/net/tcp and tcp6); empty when none does here.
	BoundTo []string `json:"bound_to"`
	// Reach says who can connect.
	Reach string `json:"reach"`
}

// UnprovenRegistration is a registration accepted without a token or an
// attestation (permissive mode).
type UnprovenRegistration struct {
	ServiceID  string `json:"service_id"`
	Component  string `json:"component,omitempty"`
	RemoteAddr string `json:"remote_addr,omitempty"`
	Alive      bool   `json:"alive"`
}

// SecurityInput is what CollectSecurity reads.
type SecurityInput struct {
	Input
	// TCPTables are the kernel's socket tables (attest.TCPTables when
	// nil).
	TCPTables []string
}

// CollectSecurity reads the facts and derives the security view.
func CollectSecurity(ctx context.Context, in SecurityInput) (*Security, error) {
	doc, err := Collect(ctx, in.Input)
	if err != nil {
		return nil, err
	}
	rec, err := serve.ReadRecord(in.Store)
	if err != nil {
		return nil, err
	}
	var recs []*state.Record
	if err := in.Store.View(func(tx *state.Tx) error {
		recs, err = tx.Components()
		return err
	}); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	tables := in.TCPTables
	if tables == nil {
		tables = attest.TCPTables
	}
	listening, err := listeningSockets(tables)
	if err != nil {
		return nil, err
	}
	s := deriveSecurity(doc, rec, recs, in.Providers, listening)
	s.Findings = append(s.Findings, dataPlaneOptOuts(in.Desired)...)
	return s, nil
}

// dataPlaneOptOuts are the components whose env turns data-plane
// authentication off or moves their ports beyond loopback
// (docs/data-plane-auth.md).
func dataPlaneOptOuts(p *config.Pipeline) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, c := range p.Components {
		if v, ok := c.Env[contract.EnvDataPlaneInsecure]; ok && v.Value != "" && v.Value != "false" && v.Value != "0" {
			out = append(out, fmt.Sprintf("%s opts out of data-plane authentication (%s=%s in its env): anyone who reaches its ports can read, write or move its position", c.Address(), contract.EnvDataPlaneInsecure, v.Value))
		}
		if v, ok := c.Env[contract.EnvBindAddress]; ok {
			if ip, err := netip.ParseAddr(v.Value); err != nil || !ip.IsLoopback() {
				out = append(out, fmt.Sprintf("%s asks to listen on %s (%s in its env)", c.Address(), v.Value, contract.EnvBindAddress))
			}
		}
	}
	return out
}

// deriveSecurity is the view of doc, the serve record (nil: none), the
// records and the listening sockets by port.
func deriveSecurity(doc *Doc, rec *serve.Record, recs []*state.Record, provs *providers.Registry, listening map[uint16][]netip.Addr) *Security {
	s := &Security{Pipeline: doc.Pipeline, StateFile: doc.StateFile, ControlPlaneRunning: doc.ControlPlane.Running,
		Listeners: []Listener{}, Ports: []PortExposure{}, Unproven: []UnprovenRegistration{}, Findings: []string{}}
	if rec != nil && rec.Alive() {
		s.AuthMode, s.DockerGateway = string(rec.AuthMode), rec.Gateway
		s.Listeners = controlPlaneListeners(rec)
	}
	for _, r := range recs {
		s.Ports = append(s.Ports, portsOf(r, provs, listening)...)
	}
	s.Unproven = unproven(doc)
	s.Findings = findings(s)
	return s
}

// controlPlaneListeners lists the serve record's sockets.
func controlPlaneListeners(rec *serve.Record) []Listener {
	grpcAuth := grpcAuthText(rec.AuthMode)
	out := []Listener{{Service: "grpc", Address: rec.GRPC, Reach: reachOf(rec.GRPC), Auth: grpcAuth, TLS: rec.TLS}}
	for _, a := range rec.AlsoGRPC {
		out = append(out, Listener{Service: "grpc-docker-gateway", Address: a, Reach: "containers on the Docker bridge, and this machine", Auth: grpcAuth, TLS: rec.TLS})
	}
	if rec.HTTP != "" {
		auth := "none for /healthz; /metrics and /v1/status need the operator token"
		if isLoopback(rec.HTTP) {
			auth = "none (loopback: /metrics and /v1/status are open to local users)"
		}
		out = append(out, Listener{Service: "http", Address: rec.HTTP, Reach: reachOf(rec.HTTP), Auth: auth, TLS: rec.TLS})
	}
	return out
}

// grpcAuthText says what the component protocols require in mode.
func grpcAuthText(mode controlplane.AuthMode) string {
	switch mode {
	case controlplane.AuthTokenOnly:
		return "a component token"
	case controlplane.AuthPermissive:
		return "nothing: registrations without proof are accepted and flagged unproven"
	default:
		return "a component token, or a workload flowctl attests (its process or container)"
	}
}

// portsOf lists r's ports and where they listen.
func portsOf(r *state.Record, provs *providers.Registry, listening map[uint16][]netip.Addr) []PortExposure {
	var out []PortExposure
	for _, name := range sortedPortNames(r.Ports) {
		p := r.Ports[name]
		e := PortExposure{Component: r.Address, Executor: r.Provider, Name: name, Port: p, BoundTo: []string{}}
		for _, a := range listening[uint16(p)] {
			e.BoundTo = append(e.BoundTo, a.String())
		}
		e.Reach = portReach(e.BoundTo, r, provs)
		out = append(out, e)
	}
	return out
}

// portReach says who reaches a component's port.
func portReach(bound []string, r *state.Record, provs *providers.Registry) string {
	if len(bound) == 0 {
		if prov, err := provs.Get(r.Provider); err == nil {
			if _, ok := prov.(providers.BindAddresser); ok {
				return "inside the component's own network (its container or pod): not listening on this machine"
			}
		}
		return "not listening on this machine"
	}
	reach := "this machine only (loopback)"
	for _, a := range bound {
		if r := reachOf(a + ":0"); r != "this machine only (loopback)" {
			reach = r
		}
	}
	return reach
}

// reachOf says who can connect to a bound host:port, from the address.
func reachOf(hostport string) string {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return "unknown (" + hostport + ")"
	}
	a := ap.Addr().Unmap()
	switch {
	case a.IsLoopback():
		return "this machine only (loopback)"
	case a.IsUnspecified():
		return "every network this machine is on"
	case a.String() == serve.DockerGatewayHost():
		return "containers on the Docker bridge, and this machine"
	default:
		return "the network of " + a.String()
	}
}

func isLoopback(hostport string) bool {
	ap, err := netip.ParseAddrPort(hostport)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// unproven are the registrations accepted without proof, of components
// and unmanaged.
func unproven(doc *Doc) []UnprovenRegistration {
	out := []UnprovenRegistration{}
	for _, c := range doc.Components {
		if c.Auth != controlplane.ProofUnproven {
			continue
		}
		for _, r := range c.RegisteredAs {
			out = append(out, UnprovenRegistration{ServiceID: r.ServiceID, Component: c.Address, Alive: r.Alive})
		}
	}
	for _, u := range doc.Unmanaged {
		if u.Auth == controlplane.ProofUnproven || u.Auth == string(controlplane.AuthUnauthenticated) {
			out = append(out, UnprovenRegistration{ServiceID: u.ServiceID, RemoteAddr: u.RemoteAddr, Alive: u.Alive})
		}
	}
	return out
}

// findings words what deserves a look.
func findings(s *Security) []string {
	var out []string
	if s.AuthMode == string(controlplane.AuthPermissive) {
		out = append(out, "the control plane runs in permissive mode: anyone who reaches its gRPC listeners can register as any component")
	}
	for _, l := range s.Listeners {
		if l.Reach == "every network this machine is on" && !l.TLS {
			out = append(out, fmt.Sprintf("%s listens on every interface (%s) without TLS", l.Service, l.Address))
		}
	}
	for _, p := range s.Ports {
		for _, a := range p.BoundTo {
			if ip, err := netip.ParseAddr(a); err == nil && !ip.IsLoopback() {
				out = append(out, fmt.Sprintf("%s's %s (%d) listens on %s, beyond loopback", p.Component, p.Name, p.Port, a))
			}
		}
	}
	if len(s.Unproven) > 0 {
		out = append(out, fmt.Sprintf("%d registration(s) were accepted without proof of who made them", len(s.Unproven)))
	}
	return out
}

// listeningSockets reads the listening sockets of tables by port.
func listeningSockets(tables []string) (map[uint16][]netip.Addr, error) {
	out := map[uint16][]netip.Addr{}
	for _, path := range tables {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		socks, err := attest.ParseTCPTable(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		for _, sk := range socks {
			if sk.State == tcpListen {
				out[sk.Local.Port()] = append(out[sk.Local.Port()], sk.Local.Addr().Unmap())
			}
		}
	}
	return out, nil
}

// tcpListen is the kernel's TCP_LISTEN state.
const tcpListen = 10

func sortedPortNames(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
