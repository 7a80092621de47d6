// Command ecocomponent behaves like the components of the flowctl
// ecosystem that send no token (docs/compat.md, "Components in the wild"),
// for tests of attestation and attribution. ECO_MODE picks one:
//
//	legacy   an older-protocol source: at the very first instant of its
//	         life, before anything else, it calls flowctl.ControlPlane/
//	         Register with no id and no token, then heartbeats every
//	         ECO_HEARTBEAT (default 10s)
//	v1       a current-protocol component: it calls
//	         flowctl.v1.ControlPlaneService/RegisterComponent with its id
//	         (ECO_ID, default $FLOWCTL_COMPONENT_ID) and no token, waiting
//	         until the control plane answers, then heartbeats
//	colon    like v1, but first listens on $PORT exactly as given, as
//	         net.Listen does: it needs ":N" and fails on a bare "N"
//	fixed    like v1, but listens on ECO_FIXED_PORT and ECO_FIXED_HEALTH
//	         whatever PORT and HEALTH_PORT say (GET /health answers 200)
//
// A refused registration is printed ("refused: …") and ends the process
// with code 3; an accepted one prints "registered SERVICE_ID". The control
// plane is $FLOWCTL_ENDPOINT (default localhost:8080).
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowctl/flowctl/pkg/contract"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

func main() {
	mode := os.Getenv("ECO_MODE")
	endpoint := os.Getenv(contract.EnvEndpoint)
	if endpoint == "" {
		endpoint = "localhost:8080"
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail("dial %s: %v", endpoint, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch mode {
	case "legacy":
		legacy(ctx, conn)
	case "v1":
		current(ctx, conn)
	case "colon":
		listen(os.Getenv(contract.EnvPort), false)
		current(ctx, conn)
	case "fixed":
		listen(":"+os.Getenv("ECO_FIXED_PORT"), false)
		listen(":"+os.Getenv("ECO_FIXED_HEALTH"), true)
		current(ctx, conn)
	default:
		fail("ECO_MODE %q: want legacy, v1, colon or fixed", mode)
	}
}

func legacy(ctx context.Context, conn *grpc.ClientConn) {
	cp := flowctlpb.NewControlPlaneClient(conn)
	ack, err := cp.Register(ctx, &flowctlpb.ServiceInfo{ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_SOURCE, OutputEventTypes: []string{"raw"}})
	if err != nil {
		refused(err)
	}
	fmt.Printf("registered %s pid=%d\n", ack.GetServiceId(), os.Getpid())
	beat(ctx, func(ctx context.Context) error {
		_, err := cp.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: ack.GetServiceId()})
		return err
	})
}

func current(ctx context.Context, conn *grpc.ClientConn) {
	cp := flowctlv1.NewControlPlaneServiceClient(conn)
	id := os.Getenv("ECO_ID")
	if id == "" {
		id = os.Getenv(contract.EnvComponentID)
	}
	resp, err := cp.RegisterComponent(ctx, &flowctlv1.RegisterRequest{
		ComponentId: id,
		Component:   &flowctlv1.ComponentInfo{Id: id, Name: "ecocomponent", Type: flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR},
	}, grpc.WaitForReady(true))
	if err != nil {
		refused(err)
	}
	fmt.Printf("registered %s pid=%d\n", resp.GetServiceId(), os.Getpid())
	beat(ctx, func(ctx context.Context) error {
		_, err := cp.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: resp.GetServiceId()})
		return err
	})
}

// beat heartbeats every ECO_HEARTBEAT until ctx ends.
func beat(ctx context.Context, hb func(context.Context) error) {
	every := 10 * time.Second
	if d, err := time.ParseDuration(os.Getenv("ECO_HEARTBEAT")); err == nil && d > 0 {
		every = d
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := hb(ctx); err != nil {
				fmt.Println("heartbeat refused:", err)
			}
		}
	}
}

// listen serves on addr exactly as given (":N"), as the ecosystem's
// components do; health answers GET /health.
func listen(addr string, health bool) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fail("listen on %q: %v", addr, err)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if !health {
		mux = http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "data") })
	}
	go func() { _ = http.Serve(l, mux) }()
}

func refused(err error) {
	fmt.Println("refused:", err)
	os.Exit(3)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ecocomponent: "+format+"\n", args...)
	os.Exit(1)
}
