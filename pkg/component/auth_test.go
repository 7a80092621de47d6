package component_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/testutil/listeners"
	"github.com/flowctl/flowctl/internal/tokens"
	"github.com/flowctl/flowctl/pkg/component"
	"github.com/flowctl/flowctl/pkg/contract"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// The data plane's authentication, attacked the way the issue did: from a
// process that is no component, with no token, a token of another key, a
// component token, an expired one, one for another audience or pipeline,
// and — for SaveState — a valid data token of a caller that is not the
// relay.

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// dataToken signs a data token by hand; edit changes its claims first.
func dataToken(t testing.TB, priv ed25519.PrivateKey, sub string, edit func(*component.DataClaims)) string {
	t.Helper()
	now := time.Now()
	c := &component.DataClaims{Pipeline: "p", RegisteredClaims: jwt.RegisteredClaims{
		Issuer: contract.DataPlaneIssuer, Audience: jwt.ClaimStrings{contract.DataPlaneAudience}, Subject: sub,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
	}}
	if edit != nil {
		edit(c)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startVerified runs a component whose data plane verifies tokens of pub
// for pipeline "p".
func startVerified(t testing.TB, id string, pub ed25519.PublicKey, handler component.Option) *component.Component {
	t.Helper()
	c, err := component.New(component.Config{ID: id, StateDir: t.TempDir()}, component.Info{Name: id}, handler,
		component.WithDataVerifier(component.NewDataVerifier(pub, component.WithPipeline("p"))))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func dialAs(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	var opts []grpc.DialOption
	if token != "" {
		opts = append(opts, component.WithDataToken(token))
	}
	conn, err := component.Dial(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// attempts are what an attacker tries on a source and a sink; each
// returns the call's error.
func readStream(ctx context.Context, conn *grpc.ClientConn) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := flowctlv1.NewSourceServiceClient(conn).StreamEvents(ctx, &flowctlv1.StreamRequest{ResumeToken: "5"})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		_, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func forge(ctx context.Context, conn *grpc.ClientConn) error {
	st, err := flowctlv1.NewConsumerServiceClient(conn).Consume(ctx)
	if err != nil {
		return err
	}
	// A refused stream may fail the send or only the answer.
	_ = st.Send(&component.Event{Id: "rt-forged-1", Type: "tick", SourceComponentId: "attacker", Payload: []byte(`{}`)})
	_, err = st.CloseAndRecv()
	return err
}

func savePosition(ctx context.Context, conn *grpc.ClientConn) error {
	_, err := flowctlv1.NewSourceServiceClient(conn).SaveState(ctx, &flowctlv1.SaveStateRequest{
		State: map[string]string{component.ResumeTokenKey: "996"},
	})
	return err
}

func TestDataPlaneRefusesCallersWithoutAValidDataToken(t *testing.T) {
	pub, priv := newKey(t)
	_, otherPriv := newKey(t)
	src := startVerified(t, "counter", pub, component.WithSource(counting("counter", 20, 0)))
	sink := &collector{}
	snk := startVerified(t, "sink", pub, component.WithSink(sink))

	secret, err := tokens.NewSecret([]byte(strings.Repeat("k", tokens.MinSecretSize)))
	if err != nil {
		t.Fatal(err)
	}
	componentToken, err := tokens.NewIssuer(secret).Issue(tokens.Subject{Address: "sink.out", Pipeline: "p", InstanceID: "i-1"})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	for _, tc := range []struct{ name, token string }{
		{"no token", ""},
		{"not a JWT", "garbage"},
		{"signed with another key", dataToken(t, otherPriv, contract.DataPlaneRelaySubject, nil)},
		{"a component token", componentToken},
		{"expired", dataToken(t, priv, contract.DataPlaneRelaySubject, func(c *component.DataClaims) {
			c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(past), jwt.NewNumericDate(past.Add(time.Minute))
		})},
		{"for the control plane", dataToken(t, priv, contract.DataPlaneRelaySubject, func(c *component.DataClaims) {
			c.Audience = jwt.ClaimStrings{tokens.ClaimAudience}
		})},
		{"for another pipeline", dataToken(t, priv, contract.DataPlaneRelaySubject, func(c *component.DataClaims) { c.Pipeline = "other" })},
		{"unsigned (alg none)", func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Subject: "relay", Audience: jwt.ClaimStrings{"data-plane"}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			n, err := readStream(ctx, dialAs(t, src.DataAddr(), tc.token))
			if status.Code(err) != codes.Unauthenticated || n != 0 {
				t.Errorf("StreamEvents(resume_token 5): %d events, %v; want Unauthenticated and none", n, err)
			}
			if err := forge(ctx, dialAs(t, snk.DataAddr(), tc.token)); status.Code(err) != codes.Unauthenticated {
				t.Errorf("Consume(forged event): %v; want Unauthenticated", err)
			}
			if err := savePosition(ctx, dialAs(t, src.DataAddr(), tc.token)); status.Code(err) != codes.Unauthenticated {
				t.Errorf("SaveState: %v; want Unauthenticated", err)
			}
		})
	}
	if got := sink.got(); len(got) != 0 {
		t.Fatalf("the sink consumed %v", got)
	}
	st, err := src.Store()
	if err != nil {
		t.Fatal(err)
	}
	if pos := st.Get("").ResumeToken; pos != "" {
		t.Fatalf("the source's position moved to %q", pos)
	}
}

func TestOnlyTheRelayMovesASourcesPosition(t *testing.T) {
	pub, priv := newKey(t)
	src := startVerified(t, "counter", pub, component.WithSource(counting("counter", 20, 0)))
	st, err := src.Store()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// A component's valid data token reads the stream but cannot commit.
	peer := dialAs(t, src.DataAddr(), dataToken(t, priv, "sink.out", nil))
	if n, err := readStream(ctx, peer); err != nil || n != 15 {
		t.Fatalf("StreamEvents with a component's data token: %d events, %v", n, err)
	}
	if err := savePosition(ctx, peer); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SaveState with a component's data token: %v; want PermissionDenied", err)
	}
	if pos := st.Get("").ResumeToken; pos != "" {
		t.Fatalf("the position moved to %q", pos)
	}

	relay := dialAs(t, src.DataAddr(), dataToken(t, priv, contract.DataPlaneRelaySubject, nil))
	if err := savePosition(ctx, relay); err != nil {
		t.Fatalf("SaveState by the relay: %v", err)
	}
	if pos := st.Get("").ResumeToken; pos != "996" {
		t.Fatalf("after the relay's save, position %q", pos)
	}
}

func TestTheRelaysDataTokenMovesEventsThroughEveryKind(t *testing.T) {
	// flowctl's own issuer, the SDK's verifier: the round trip the
	// pipeline depends on.
	key, err := tokens.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := component.ParseDataPlaneKey(key.PublicString())
	if err != nil {
		t.Fatal(err)
	}
	src := startVerified(t, "counter", pub, component.WithSource(counting("counter", 10, 0)))
	proc := startVerified(t, "tag", pub, component.WithProcessor(passThrough))
	sink := &collector{}
	snk := startVerified(t, "sink", pub, component.WithSink(sink))
	tok, err := tokens.NewDataIssuer(key, "p").Issue(contract.DataPlaneRelaySubject)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	events, err := flowctlv1.NewSourceServiceClient(dialAs(t, src.DataAddr(), tok)).StreamEvents(ctx, &flowctlv1.StreamRequest{})
	if err != nil {
		t.Fatal(err)
	}
	process, err := flowctlv1.NewProcessorServiceClient(dialAs(t, proc.DataAddr(), tok)).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	consume, err := flowctlv1.NewConsumerServiceClient(dialAs(t, snk.DataAddr(), tok)).Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		ev, err := events.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := process.Send(ev); err != nil {
			t.Fatal(err)
		}
		out, err := process.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := consume.Send(out); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := consume.CloseAndRecv()
	if err != nil || resp.EventsConsumed != 10 {
		t.Fatalf("consume: %v %v", resp, err)
	}
	if got := sink.got(); len(got) != 10 || got[0] != "counter-1" || got[9] != "counter-10" {
		t.Fatalf("sink got %v", got)
	}
}

func TestNewRefusesADataPlaneWithNoKeyUnlessToldToAcceptAnyCaller(t *testing.T) {
	_, err := component.New(component.Config{ID: "sink"}, component.Info{}, component.WithSink(&collector{}))
	if err == nil || !strings.Contains(err.Error(), contract.EnvDataPlaneKey) || !strings.Contains(err.Error(), contract.EnvDataPlaneInsecure) {
		t.Fatalf("New with no data-plane key: %v", err)
	}
	if _, err := component.New(component.Config{ID: "sink", DataPlaneKey: "not-a-key"}, component.Info{}, component.WithSink(&collector{})); err == nil ||
		!strings.Contains(err.Error(), contract.EnvDataPlaneKey) {
		t.Fatalf("New with a malformed data-plane key: %v", err)
	}
	if _, err := component.New(component.Config{ID: "sink", InsecureDataPlane: true}, component.Info{}, component.WithSink(&collector{})); err != nil {
		t.Fatalf("New with %s=true: %v", contract.EnvDataPlaneInsecure, err)
	}
	// A component without a data plane needs no key.
	if _, err := component.New(component.Config{ID: "watcher"}, component.Info{Type: component.Source}); err != nil {
		t.Fatalf("New without a data plane: %v", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestPortsListenOnTheBindAddressOnly(t *testing.T) {
	pub, _ := newKey(t)
	key, err := component.EncodeDataPlaneKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bind string
		want netip.Addr
	}{
		{"", netip.MustParseAddr("127.0.0.1")},
		{"0.0.0.0", netip.IPv4Unspecified()},
	} {
		t.Run("bind="+tc.bind, func(t *testing.T) {
			port, health := freePort(t), freePort(t)
			c, err := component.New(component.Config{ID: "sink", Port: port, HealthPort: health, BindAddress: tc.bind, DataPlaneKey: key, StateDir: t.TempDir()},
				component.Info{}, component.WithSink(&collector{}))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			for _, p := range []int{port, health} {
				got, err := listeners.On(p)
				if err != nil {
					t.Fatal(err)
				}
				// Go listens on 0.0.0.0 with a dual-stack socket, shown as ::.
				if len(got) != 1 || got[0] != tc.want && !(tc.want.IsUnspecified() && got[0].IsUnspecified()) {
					t.Errorf("port %d listens on %v, want only %v", p, got, tc.want)
				}
			}
			if want := "127.0.0.1:" + strconv.Itoa(port); c.DataAddr() != want {
				t.Errorf("DataAddr %s, want %s", c.DataAddr(), want)
			}
		})
	}
}

// BenchmarkDataVerifier: the cost of one call's token check, the first
// time a token is seen (a signature check) and after (the cache).
//
//	go test -run '^$' -bench DataVerifier ./pkg/component/
func BenchmarkDataVerifier(b *testing.B) {
	pub, priv := newKey(b)
	b.Run("first", func(b *testing.B) {
		toks := make([]string, 256)
		for i := range toks {
			toks[i] = dataToken(b, priv, "relay-"+strconv.Itoa(i), nil)
		}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			v := component.NewDataVerifier(pub, component.WithPipeline("p"))
			if _, err := v.Verify(toks[i%len(toks)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		v := component.NewDataVerifier(pub, component.WithPipeline("p"))
		tok := dataToken(b, priv, contract.DataPlaneRelaySubject, nil)
		for b.Loop() {
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
