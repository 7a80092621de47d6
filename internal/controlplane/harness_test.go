package controlplane

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

const (
	testPipeline = "ttp"
	testLineage  = "lin-1"
)

var secretBytes = []byte("s3cr3t-0123456789abcdef-XYZ-0123")

// fakeClock is shared by the server and the token verifier.
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// The pipeline every test runs against.
func pipelineComponents() []ExpectedComponent {
	return []ExpectedComponent{
		{Address: "source.ledger", ID: "ledger", HealthPort: 18088, InstanceID: "i-ledger"},
		{Address: "processor.ttp", ID: "ttp", HealthPort: 18089, InstanceID: "i-ttp"},
		{Address: "sink.out", ID: "out", HealthPort: 18090, InstanceID: "i-out"},
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type harness struct {
	t        testing.TB
	clock    *fakeClock
	secret   *tokens.Secret
	issuer   *tokens.Issuer
	expected *StaticExpected
	logs     *syncBuffer
	srv      *Server
	gs       *grpc.Server
	conn     *grpc.ClientConn
	v1       flowctlv1.ControlPlaneServiceClient
	legacy   flowctlpb.ControlPlaneClient
	opts     Options
}

type harnessOption func(*harness, *Options)

func permissive(_ *harness, o *Options) { o.AuthMode = AuthPermissive }

func withStore(store *state.Store) harnessOption {
	return func(_ *harness, o *Options) { o.Store = store }
}

func newHarness(t testing.TB, hopts ...harnessOption) *harness {
	t.Helper()
	secret, err := tokens.NewSecret(secretBytes)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:        t,
		clock:    newClock(t0),
		secret:   secret,
		expected: NewStaticExpected(pipelineComponents()...),
		logs:     &syncBuffer{},
	}
	h.issuer = tokens.NewIssuer(secret, tokens.WithLifetime(10*time.Hour), tokens.WithIssuerClock(h.clock.Now))
	opts := Options{
		Verifier: tokens.NewVerifier(secret, testPipeline, testLineage, tokens.WithVerifierClock(h.clock.Now)),
		Issuer:   h.issuer,
		Expected: h.expected,
		Logger:   slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      h.clock.Now,
		// Refusals of unknown instances come at once in these tests;
		// TestPendingInstanceIsAccepted covers the wait.
		PendingWait: time.Millisecond,
	}
	for _, o := range hopts {
		o(h, &opts)
	}
	h.opts = opts
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	t := h.t
	srv, err := New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(GRPCServerOptions()...)
	srv.Register(gs)
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.gs, h.conn = srv, gs, conn
	h.v1 = flowctlv1.NewControlPlaneServiceClient(conn)
	h.legacy = flowctlpb.NewControlPlaneClient(conn)
}

func (h *harness) stop() {
	if h.srv == nil {
		return
	}
	h.conn.Close()
	h.gs.Stop()
	h.srv.Close()
	h.srv = nil
}

// restart stops the server and starts a new one with the same options.
func (h *harness) restart() {
	h.stop()
	h.start()
}

func (h *harness) token(addr, instance string) string {
	h.t.Helper()
	tok, err := h.issuer.Issue(tokens.Subject{Address: addr, Pipeline: testPipeline, Lineage: testLineage, InstanceID: instance})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// as returns a context carrying tok as the authorization metadata.
func as(tok string) context.Context {
	ctx := context.Background()
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

func (h *harness) ledgerTok() string { return h.token("source.ledger", "i-ledger") }
func (h *harness) ttpTok() string    { return h.token("processor.ttp", "i-ttp") }
func (h *harness) outTok() string    { return h.token("sink.out", "i-out") }

// wantRefused checks err is a status with code and an ErrorInfo reason.
func wantRefused(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("call accepted; want %s (%s)", code, reason)
	}
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("code %s (%v); want %s (%s)", st.Code(), err, code, reason)
	}
	var got string
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			got = ei.Reason
		}
	}
	if got != upper(reason) {
		t.Fatalf("reason %q (%v); want %q", got, err, upper(reason))
	}
}

func upper(s string) string { return string(bytes.ToUpper([]byte(s))) }

func tempStore(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), ".flowctl", "ttp.state.db"), testPipeline)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *harness) reg(id string) Registration {
	h.t.Helper()
	r, ok := h.srv.Lookup(id)
	if !ok {
		h.t.Fatalf("no registration %s", id)
	}
	return r
}
