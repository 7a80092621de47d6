package status

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/providertest"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/pkg/contract"
)

// liveServe is a serve record of this (live) process.
func liveServe(t *testing.T, mode controlplane.AuthMode, addrs serve.Addrs) *serve.Record {
	t.Helper()
	self, err := procinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	return &serve.Record{Process: self, Host: host, Addrs: addrs, AuthMode: mode}
}

func TestSecurityListsListenersPortsAndUnprovenRegistrations(t *testing.T) {
	reg := providers.NewRegistry(providertest.New("process"))
	recs := []*state.Record{{Address: "source.a", Provider: "process", Ports: map[string]int{"PORT": 50051, "HEALTH_PORT": 8088}}}
	listening := map[uint16][]netip.Addr{50051: {netip.MustParseAddr("127.0.0.1")}, 8088: {netip.MustParseAddr("0.0.0.0")}}
	doc := &Doc{Pipeline: "demo", StateFile: "s.db", ControlPlane: ControlPlane{Running: true},
		Components: []Component{{Address: "source.a", Auth: controlplane.ProofUnproven, RegisteredAs: []Registration{{ServiceID: "svc-1", Alive: true}}}},
		Unmanaged:  []Unmanaged{{ServiceID: "svc-2", Auth: controlplane.ProofUnproven, RemoteAddr: "172.17.0.5:40000"}}}
	rec := liveServe(t, controlplane.AuthPermissive, serve.Addrs{GRPC: "127.0.0.1:8080", AlsoGRPC: []string{"172.17.0.1:8080"}, HTTP: "0.0.0.0:8081", Gateway: "listening on the Docker bridge gateway"})

	s := deriveSecurity(doc, rec, recs, reg, listening)
	if len(s.Listeners) != 3 || s.Listeners[0].Service != "grpc" || s.Listeners[1].Service != "grpc-docker-gateway" || s.Listeners[2].Service != "http" {
		t.Fatalf("listeners %+v", s.Listeners)
	}
	if !strings.Contains(s.Listeners[0].Reach, "loopback") || s.Listeners[2].Reach != "every network this machine is on" {
		t.Errorf("reach: %+v", s.Listeners)
	}
	if !strings.Contains(s.Listeners[0].Auth, "nothing") || !strings.Contains(s.Listeners[2].Auth, "operator token") {
		t.Errorf("auth: %+v", s.Listeners)
	}
	if len(s.Ports) != 2 || s.Ports[0].Name != "HEALTH_PORT" || s.Ports[0].BoundTo[0] != "0.0.0.0" || s.Ports[1].BoundTo[0] != "127.0.0.1" {
		t.Fatalf("ports %+v", s.Ports)
	}
	if len(s.Unproven) != 2 || s.Unproven[0].Component != "source.a" || s.Unproven[1].RemoteAddr != "172.17.0.5:40000" {
		t.Errorf("unproven %+v", s.Unproven)
	}
	all := strings.Join(s.Findings, "\n")
	for _, want := range []string{"permissive mode", "http listens on every interface (0.0.0.0:8081) without TLS", "HEALTH_PORT (8088) listens on 0.0.0.0", "2 registration(s) were accepted without proof"} {
		if !strings.Contains(all, want) {
			t.Errorf("findings do not say %q:\n%s", want, all)
		}
	}
	var out bytes.Buffer
	if err := WriteSecurity(&out, s, "table"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"auth mode permissive", "grpc-docker-gateway", "172.17.0.1:8080", "svc-2: no component (from 172.17.0.5:40000)", "Findings:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table does not say %q:\n%s", want, out.String())
		}
	}
}

func TestSecurityOfALockedDownPipelineHasNoFindings(t *testing.T) {
	reg := providers.NewRegistry(providertest.New("process"))
	recs := []*state.Record{{Address: "source.a", Provider: "process", Ports: map[string]int{"PORT": 50051}}}
	listening := map[uint16][]netip.Addr{50051: {netip.MustParseAddr("127.0.0.1")}}
	doc := &Doc{Pipeline: "demo", ControlPlane: ControlPlane{Running: true}, Components: []Component{{Address: "source.a", Auth: "token"}}}
	rec := liveServe(t, controlplane.AuthRequired, serve.Addrs{GRPC: "127.0.0.1:8080", HTTP: "127.0.0.1:8081"})
	s := deriveSecurity(doc, rec, recs, reg, listening)
	if len(s.Findings) != 0 || len(s.Unproven) != 0 {
		t.Errorf("findings %v, unproven %v", s.Findings, s.Unproven)
	}
	if !strings.Contains(s.Listeners[0].Auth, "attests") {
		t.Errorf("required mode: %q", s.Listeners[0].Auth)
	}

	// No control plane: nothing listens.
	s = deriveSecurity(&Doc{Pipeline: "demo"}, nil, recs, reg, nil)
	if len(s.Listeners) != 0 || s.Ports[0].Reach != "not listening on this machine" {
		t.Errorf("without serve: %+v", s)
	}
}

func TestSecurityNamesComponentsThatOptOutOfTheClosedDataPlane(t *testing.T) {
	p := &config.Pipeline{Components: []*config.Component{
		{Kind: config.KindSource, ID: "open", Env: map[string]config.EnvValue{contract.EnvDataPlaneInsecure: {Value: "true"}}},
		{Kind: config.KindSink, ID: "wide", Env: map[string]config.EnvValue{contract.EnvBindAddress: {Value: "0.0.0.0"}}},
		{Kind: config.KindSink, ID: "closed", Env: map[string]config.EnvValue{contract.EnvDataPlaneInsecure: {Value: "false"}, contract.EnvBindAddress: {Value: "127.0.0.1"}}},
	}}
	got := strings.Join(dataPlaneOptOuts(p), "\n")
	if !strings.Contains(got, "source.open opts out of data-plane authentication") || !strings.Contains(got, "sink.wide asks to listen on 0.0.0.0") || strings.Contains(got, "sink.closed") {
		t.Errorf("findings:\n%s", got)
	}
}
