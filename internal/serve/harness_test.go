package serve

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

const testPipeline = "ttp"

// newState creates a state file holding the three components of the test
// pipeline, as an apply would have recorded them.
func newState(t testing.TB) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), ".flowctl", testPipeline+".state.db"), testPipeline)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx *state.Tx) error {
		for _, r := range []*state.Record{
			{Address: "source.ledger", Kind: "source", ID: "ledger", Provider: "process", InstanceID: "i-ledger", Ports: map[string]int{"HEALTH_PORT": 18088}, Status: state.StatusRunning, TokenGeneration: 1},
			{Address: "processor.ttp", Kind: "processor", ID: "ttp", Provider: "process", InstanceID: "i-ttp", Ports: map[string]int{"HEALTH_PORT": 18089}, Status: state.StatusRunning, TokenGeneration: 1},
			{Address: "sink.out", Kind: "sink", ID: "out", Provider: "process", InstanceID: "i-out", Ports: map[string]int{"HEALTH_PORT": 18090}, Status: state.StatusRunning, TokenGeneration: 1},
		} {
			if err := tx.PutComponent(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// syncBuffer is a log destination safe for concurrent writes.
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

// running is one in-process Run.
type running struct {
	t     testing.TB
	store *state.Store
	addrs Addrs
	logs  *syncBuffer
	stop  func() error
}

// start runs serve in-process on the store until the test ends (or stop
// is called) and waits for Ready. Unset addresses are loopback port 0.
func start(t testing.TB, store *state.Store, opts Options) *running {
	t.Helper()
	opts.StatePath = store.Path()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.HTTPListen == "" {
		opts.HTTPListen = "127.0.0.1:0"
	}
	opts.MemoryLimit = -1 // never the test process's
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ready := make(chan Addrs, 1)
	opts.Ready = func(a Addrs) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	r := &running{t: t, store: store, logs: logs}
	select {
	case r.addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve ended before it was ready: %v", err)
	}
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return r
}

// issuer signs tokens with the secret serve uses by default.
func issuer(t testing.TB, store *state.Store) *tokens.Issuer {
	t.Helper()
	secret, err := tokens.LoadSecret(tokens.DefaultSecretPath(store.Path()))
	if err != nil {
		t.Fatal(err)
	}
	return tokens.NewIssuer(secret)
}

func lineage(t testing.TB, store *state.Store) string {
	t.Helper()
	var l string
	if err := store.View(func(tx *state.Tx) error { l = tx.Meta().Lineage; return nil }); err != nil {
		t.Fatal(err)
	}
	return l
}

func token(t testing.TB, store *state.Store, iss *tokens.Issuer, addr, instance string) string {
	t.Helper()
	tok, err := iss.Issue(tokens.Subject{Address: addr, Pipeline: testPipeline, Lineage: lineage(t, store), InstanceID: instance})
	if err != nil {
		t.Fatal(err)
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

type clients struct {
	conn   *grpc.ClientConn
	v1     flowctlv1.ControlPlaneServiceClient
	legacy flowctlpb.ControlPlaneClient
}

func dial(t testing.TB, addr string, creds credentials.TransportCredentials) *clients {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &clients{conn: conn, v1: flowctlv1.NewControlPlaneServiceClient(conn), legacy: flowctlpb.NewControlPlaneClient(conn)}
}

// get fetches url with an optional bearer token; it returns the status
// code and body.
func get(t testing.TB, c *http.Client, url, bearer string) (int, string) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metricLine returns the value of the sample named exactly (with labels)
// in a Prometheus text exposition, or "" when absent.
func metricLine(body, sample string) string {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			return v
		}
	}
	return ""
}

// pki is a CA with a server certificate (127.0.0.1) and a client
// certificate, written as PEM files.
type pki struct {
	dir                           string
	caFile, certFile, keyFile     string
	clientCertFile, clientKeyFile string
	pool                          *x509.CertPool
	clientCert                    tls.Certificate
	otherCACert                   tls.Certificate // a client cert signed by another CA
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir, pool: x509.NewCertPool()}
	caKey, caCert, caDER := selfSignedCA(t, "flowctl test CA")
	p.pool.AddCert(caCert)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	srvKey, srvDER := leaf(t, caCert, caKey, "serve", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.certFile = writePEM(t, dir, "server.pem", "CERTIFICATE", srvDER)
	p.keyFile = writeKey(t, dir, "server-key.pem", srvKey)

	cliKey, cliDER := leaf(t, caCert, caKey, "source.ledger", x509.ExtKeyUsageClientAuth, nil)
	p.clientCertFile = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	p.clientKeyFile = writeKey(t, dir, "client-key.pem", cliKey)
	var err error
	if p.clientCert, err = tls.LoadX509KeyPair(p.clientCertFile, p.clientKeyFile); err != nil {
		t.Fatal(err)
	}

	otherKey, otherCA, _ := selfSignedCA(t, "another CA")
	oKey, oDER := leaf(t, otherCA, otherKey, "intruder", x509.ExtKeyUsageClientAuth, nil)
	p.otherCACert = tls.Certificate{Certificate: [][]byte{oDER}, PrivateKey: oKey}
	return p
}

func selfSignedCA(t testing.TB, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func leaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage, ips []net.IP) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeKey(t testing.TB, dir, name string, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "PRIVATE KEY", der)
}
