package serve

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil/listeners"
)

// bridge is this machine's docker0 address; the tests need one (the
// Docker engine runs where the suite runs).
func bridge(t *testing.T) netip.Addr {
	t.Helper()
	gw := DockerGatewayHost()
	if gw == "" {
		t.Skip("this machine has no docker0 bridge")
	}
	return netip.MustParseAddr(gw)
}

// onBridge says whether a socket listens on gw at the port of the gRPC
// address addr, as /proc/net/tcp shows it.
func onBridge(t *testing.T, gw netip.Addr, addr string) bool {
	t.Helper()
	got, err := listeners.OnAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(got, gw)
}

func putDockerComponent(t *testing.T, store *state.Store) {
	t.Helper()
	err := store.Update(func(tx *state.Tx) error {
		return tx.PutComponent(&state.Record{Address: "sink.db", Kind: "sink", ID: "db", Provider: "docker", InstanceID: "i-db", Status: state.StatusRunning})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAProcessOnlyPipelinesServeOpensNothingOnTheBridgeUntilAContainerIsApplied(t *testing.T) {
	gw := bridge(t)
	store := newState(t) // process components only
	r := start(t, store, Options{DockerGateway: true, GatewayCheckInterval: 20 * time.Millisecond})
	if len(r.addrs.AlsoGRPC) > 0 || onBridge(t, gw, r.addrs.GRPC) {
		t.Fatalf("a process-only pipeline's serve listens on the bridge: %v", r.addrs.AlsoGRPC)
	}
	if !strings.Contains(r.logs.String(), "no component runs in a container") {
		t.Errorf("serve's log does not say why it is not on the bridge:\n%s", r.logs)
	}
	if rec, err := ReadRecord(store); err != nil || !strings.Contains(rec.Gateway, "not listening") {
		t.Errorf("the serve record does not say it is off the bridge: %+v, %v", rec, err)
	}

	// An apply records a docker component: its container must reach the
	// control plane, so serve opens the gateway and records it.
	putDockerComponent(t, store)
	want := net.JoinHostPort(gw.String(), portOf(t, r.addrs.GRPC))
	waitFor(t, "serve to listen on the bridge", func() bool {
		rec, err := ReadRecord(store)
		return err == nil && slices.Contains(rec.AlsoGRPC, want) && onBridge(t, gw, r.addrs.GRPC)
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if onBridge(t, gw, r.addrs.GRPC) {
		t.Error("the gateway listener outlives serve")
	}
}

func TestAPipelineWithContainersIsServedOnTheBridgeFromTheStartUnlessTurnedOff(t *testing.T) {
	gw := bridge(t)
	store := newState(t)
	putDockerComponent(t, store)
	r := start(t, store, Options{DockerGateway: true})
	want := net.JoinHostPort(gw.String(), portOf(t, r.addrs.GRPC))
	if !slices.Contains(r.addrs.AlsoGRPC, want) || !onBridge(t, gw, r.addrs.GRPC) {
		t.Fatalf("serve of a pipeline with a docker component is not on the bridge (%s): %v", want, r.addrs.AlsoGRPC)
	}
	if !strings.Contains(r.logs.String(), "listening on the Docker bridge gateway "+gw.String()+": containers of sink.db") {
		t.Errorf("serve's log does not say it listens on the bridge, and for whom:\n%s", r.logs)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	off := newState(t)
	putDockerComponent(t, off)
	r = start(t, off, Options{DockerGateway: false})
	if len(r.addrs.AlsoGRPC) > 0 || onBridge(t, gw, r.addrs.GRPC) {
		t.Fatalf("--no-docker-gateway, yet serve listens on the bridge: %v", r.addrs.AlsoGRPC)
	}
	if !strings.Contains(r.logs.String(), "turned off (--no-docker-gateway)") {
		t.Errorf("serve's log does not say the gateway is turned off:\n%s", r.logs)
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAnApplyAboutToStartContainersHasTheBridgeOpenBeforeTheyStart(t *testing.T) {
	gw := bridge(t)
	withContainer := &config.Pipeline{Name: testPipeline, Components: []*config.Component{
		{Kind: config.KindSource, ID: "ledger", Executor: "process"},
		{Kind: config.KindSink, ID: "db", Executor: "docker"},
	}}

	// A control plane already running, off the bridge: AwaitBridge
	// returns once it has opened it.
	store := newState(t)
	r := start(t, store, Options{DockerGateway: true, GatewayCheckInterval: 20 * time.Millisecond})
	if onBridge(t, gw, r.addrs.GRPC) {
		t.Fatal("on the bridge before any container is expected")
	}
	if err := ExpectBridge(store, withContainer); err != nil {
		t.Fatal(err)
	}
	if err := AwaitBridge(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	if !onBridge(t, gw, r.addrs.GRPC) {
		t.Fatal("AwaitBridge returned before the control plane listened on the bridge")
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// A control plane started after ExpectBridge listens there from the
	// start; one for a pipeline without containers does not.
	r = start(t, store, Options{DockerGateway: true})
	if !onBridge(t, gw, r.addrs.GRPC) {
		t.Fatalf("a control plane started for expected containers is not on the bridge: %+v", r.addrs)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if err := ExpectBridge(store, &config.Pipeline{Name: testPipeline, Components: withContainer.Components[:1]}); err != nil {
		t.Fatal(err)
	}
	r = start(t, store, Options{DockerGateway: true})
	if onBridge(t, gw, r.addrs.GRPC) || !r.addrs.GatewayPending {
		t.Fatalf("a control plane of a process-only pipeline is on the bridge: %+v", r.addrs)
	}
}
