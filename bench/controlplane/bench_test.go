package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/tokens"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// TestSmoke runs the load generator briefly against an in-process control
// plane, both protocols, with and without tokens, with both heartbeat
// clients, so that the benchmark keeps working as the control plane changes.
func TestSmoke(t *testing.T) {
	for _, client := range []string{"grpc", "raw"} {
		for _, tokensOn := range []bool{false, true} {
			for _, rate := range []time.Duration{100 * time.Millisecond, 0} {
				c := config{n: 6, rate: rate, duration: 600 * time.Millisecond, protocol: "both", client: client, tokens: tokensOn,
					concurrency: 4, timeout: 5 * time.Second, regConc: 3, inprocess: true}
				res, err := run(c)
				if err != nil {
					t.Fatal(err)
				}
				if res.Client != client || res.Registered != 6 || res.RegisterErrors != 0 || res.HeartbeatErrs != 0 || res.Heartbeats < 6 || len(res.FirstErrors) != 0 {
					t.Fatalf("client=%s tokens=%v rate=%s: %+v", client, tokensOn, rate, res)
				}
				m := res.ServerStats.Metrics
				if m == nil || m.Heartbeats != uint64(res.Heartbeats) || m.Unmanaged != 0 {
					t.Fatalf("server metrics %+v", m)
				}
				if tokensOn != (m.Unauthenticated == 0) {
					t.Fatalf("tokens=%v but %d unauthenticated", tokensOn, m.Unauthenticated)
				}
			}
		}
	}
}

// TestRawClientRefused: the control plane's refusals come back from the raw
// client as gRPC status errors, and leave the connection usable.
func TestRawClientRefused(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, tokens.SecretFileName)
	srv, gs, lis, err := startServer("127.0.0.1:0", dir, 2, true, secretFile)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer gs.Stop()
	addr := lis.Addr().String()
	secret, err := tokens.LoadSecret(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	e := benchComponents(2)[0]
	tok, err := tokens.NewIssuer(secret).Issue(tokens.Subject{Address: e.Address, Pipeline: benchPipeline, Lineage: benchLineage, InstanceID: e.InstanceID})
	if err != nil {
		t.Fatal(err)
	}
	good := metadata.Pairs("authorization", "Bearer "+tok)

	// Component 0 registers (v1) with grpc-go.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cp := &component{ctx: metadata.NewOutgoingContext(context.Background(), good), cpV1: flowctlv1.NewControlPlaneServiceClient(conn)}
	if err := register(cp, e, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	v1 := flowctlv1.ControlPlaneService_Heartbeat_FullMethodName
	legacy := flowctlpb.ControlPlane_Heartbeat_FullMethodName
	check := func(err error, code codes.Code, msg string) {
		t.Helper()
		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
			t.Fatalf("got %v, want code %v and a message with %q", err, code, msg)
		}
	}

	raw, err := dialRaw(addr, good, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// Unknown ids (the message is percent-encoded on the wire).
	check(raw.call(v1, &flowctlv1.HeartbeatRequest{ServiceId: "nöpe"}, deadline), codes.NotFound, `no registration "nöpe"`)
	check(raw.call(legacy, &flowctlpb.ServiceHeartbeat{ServiceId: "nope"}, deadline), codes.NotFound, `no registration "nope"`)
	// The connection is still good.
	for range 3 {
		check(raw.call(v1, &flowctlv1.HeartbeatRequest{ServiceId: cp.serviceID}, deadline), codes.OK, "")
	}

	for _, md := range []metadata.MD{nil, metadata.Pairs("authorization", "Bearer xyz")} {
		bad, err := dialRaw(addr, md, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		check(bad.call(v1, &flowctlv1.HeartbeatRequest{ServiceId: cp.serviceID}, deadline), codes.Unauthenticated, "")
	}
}

// TestRawClientProtocol drives the raw client against a scripted HTTP/2
// server: PING, CONTINUATION, trailers-only answers, RST_STREAM, GOAWAY and
// the deadline.
func TestRawClientProtocol(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go fakeServer(conn)
		}
	}()
	addr := lis.Addr().String()
	md := metadata.Pairs("authorization", "Bearer x")
	req := &flowctlv1.HeartbeatRequest{ServiceId: "s"}
	deadline := time.Now().Add(10 * time.Second)
	wantErr := func(err error, substr string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), substr) {
			t.Fatalf("got %v, want an error with %q", err, substr)
		}
	}

	c, err := dialRaw(addr, md, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"OK", "PingAcked", "OK"} { // 3 calls: repeated headers are indexed
		if err := c.call("/t.S/"+m, req, deadline); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	err = c.call("/t.S/NotFound", req, deadline)
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "no such thing" {
		t.Fatalf("NotFound: %v", err)
	}
	wantErr(c.call("/t.S/Reset", req, deadline), "stream reset")
	if err := c.call("/t.S/OK", req, deadline); err != nil {
		t.Fatalf("OK after stream errors: %v", err)
	}
	wantErr(c.call("/t.S/GoAway", req, deadline), "GOAWAY")
	wantErr(c.call("/t.S/OK", req, deadline), "GOAWAY")

	// The connection's own per-call timeout is an hour: only the call's
	// deadline can end the hanging call (if it is ignored, the test hangs
	// until go test's timeout fails it).
	h, err := dialRaw(addr, md, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = h.call("/t.S/Hang", req, time.Now().Add(200*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Hang: %v, want a deadline error", err)
	}
	if err2 := h.call("/t.S/OK", req, deadline); err2 != err {
		t.Fatalf("after a timeout: %v, want %v", err2, err)
	}
}

// fakeServer answers each call according to its method name.
func fakeServer(conn net.Conn) {
	defer conn.Close()
	if _, err := io.ReadFull(conn, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return slices.Clone(hb.Bytes())
	}
	answer := func(id uint32, grpcStatus, msg string) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true,
			BlockFragment: block(":status", "200", "content-type", "application/grpc", "grpc-status", grpcStatus, "grpc-message", msg)})
	}
	fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	ping := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	var pingAcked atomic.Bool
	var path, auth string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if f.IsAck() && f.Data == ping {
				pingAcked.Store(true)
			}
		case *http2.MetaHeadersFrame:
			path, auth = f.PseudoValue("path"), ""
			for _, h := range f.RegularFields() {
				if h.Name == "authorization" {
					auth = h.Value
				}
			}
		case *http2.DataFrame:
			if !f.StreamEnded() {
				continue
			}
			id := f.StreamID
			if auth != "Bearer x" || len(f.Data()) < 5 || f.Data()[0] != 0 {
				answer(id, "3", "bad request")
				continue
			}
			switch path {
			case "/t.S/OK":
				// A PING first, headers split over a CONTINUATION, a
				// message, then trailers.
				fr.WritePing(false, ping)
				b := block(":status", "200", "content-type", "application/grpc")
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b[:1]})
				fr.WriteContinuation(id, true, b[1:])
				fr.WriteData(id, false, []byte{0, 0, 0, 0, 0})
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: block("grpc-status", "0")})
			case "/t.S/PingAcked":
				if pingAcked.Load() {
					answer(id, "0", "")
				} else {
					answer(id, "13", "no PING ack")
				}
			case "/t.S/NotFound":
				answer(id, "5", "no%20such%20thing")
			case "/t.S/Reset":
				fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
			case "/t.S/GoAway":
				fr.WriteGoAway(id-2, http2.ErrCodeNo, []byte("bye"))
			case "/t.S/Hang":
			default:
				answer(id, "12", "unknown method "+path)
			}
		}
	}
}
