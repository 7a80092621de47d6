package serve

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

func TestServeRegistersAndHeartbeatsBothProtocols(t *testing.T) {
	store := newState(t)
	s := start(t, store, Options{})
	iss := issuer(t, store)
	ledgerTok := token(t, store, iss, "source.ledger", "i-ledger")
	ttpTok := token(t, store, iss, "processor.ttp", "i-ttp")
	c := dial(t, s.addrs.GRPC, nil)
	ttpServiceID := registerAndHeartbeatBothProtocols(t, c, ledgerTok, ttpTok)

	base := "http://" + s.addrs.HTTP
	if code, body := get(t, nil, base+"/healthz", ""); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	code, body := get(t, nil, base+"/v1/status", "")
	if code != 200 {
		t.Fatalf("/v1/status: %d %s", code, body)
	}
	secret, err := os.ReadFile(tokens.DefaultSecretPath(store.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, ledgerTok) || strings.Contains(body, ttpTok) || strings.Contains(body, string(secret)) {
		t.Fatal("/v1/status shows a token or the secret")
	}
	checkStatusOfBothProtocols(t, store, s, body, ttpServiceID)

	code, body = get(t, nil, base+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	checkMetricsOfBothProtocols(t, body)
}

// registerAndHeartbeatBothProtocols registers source.ledger as an SDK
// component (current protocol) and processor.ttp as an older one, each
// with its token, heartbeats both once, and returns processor.ttp's
// service id.
func registerAndHeartbeatBothProtocols(t *testing.T, c *clients, ledgerTok, ttpTok string) string {
	t.Helper()
	resp, err := c.v1.RegisterComponent(as(ledgerTok), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{
		Id: "ledger", Type: flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE, Endpoint: "127.0.0.1:50051",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.v1.Heartbeat(as(ledgerTok), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId, Status: flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY}); err != nil {
		t.Fatal(err)
	}
	ack, err := c.legacy.Register(as(ttpTok), &flowctlpb.ServiceInfo{
		ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR, HealthEndpoint: "http://localhost:18089/health",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.legacy.Heartbeat(as(ttpTok), &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId, Metrics: map[string]float64{"processed": 3}}); err != nil {
		t.Fatal(err)
	}
	ls, err := c.legacy.ListServices(as(ttpTok), &emptypb.Empty{})
	if err != nil || len(ls.Services) != 2 {
		t.Fatalf("list services: %v %v", ls, err)
	}
	return ack.ServiceId
}

// checkStatusOfBothProtocols checks the /v1/status document after
// registerAndHeartbeatBothProtocols.
func checkStatusOfBothProtocols(t *testing.T, store *state.Store, s *running, body, ttpServiceID string) {
	t.Helper()
	var doc Status
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Pipeline != testPipeline || doc.Lineage != lineage(t, store) || doc.Serve.GRPC != s.addrs.GRPC || doc.Serve.Process.PID != os.Getpid() {
		t.Fatalf("status header %+v", doc)
	}
	if len(doc.Registrations) != 2 || doc.Metrics.Heartbeats != 2 || doc.Metrics.Registrations != 2 {
		t.Fatalf("registrations %+v metrics %+v", doc.Registrations, doc.Metrics)
	}
	comps := map[string]ComponentStatus{}
	for _, cs := range doc.Components {
		comps[cs.Address] = cs
	}
	if l := comps["source.ledger"]; !l.Registered || !l.Alive || !l.Healthy || l.Auth != controlplane.AuthToken || len(l.ServiceIDs) != 1 || l.LastHeartbeat.IsZero() {
		t.Fatalf("source.ledger %+v", l)
	}
	if p := comps["processor.ttp"]; !p.Registered || p.ServiceIDs[0] != ttpServiceID {
		t.Fatalf("processor.ttp %+v", p)
	}
	if o := comps["sink.out"]; o.Registered || o.Status != state.StatusRunning {
		t.Fatalf("sink.out %+v", o)
	}
}

// checkMetricsOfBothProtocols checks /metrics after
// registerAndHeartbeatBothProtocols.
func checkMetricsOfBothProtocols(t *testing.T, body string) {
	t.Helper()
	for sample, want := range map[string]string{
		"flowctl_controlplane_registrations_total":                             "2",
		"flowctl_controlplane_heartbeats_total":                                "2",
		"flowctl_controlplane_registrations":                                   "2",
		"flowctl_controlplane_registrations_alive":                             "2",
		`flowctl_controlplane_refusals_total{reason="bad_signature"}`:          "0",
		`flowctl_controlplane_component_healthy{component="source.ledger"}`:    "1",
		`flowctl_controlplane_component_registered{component="processor.ttp"}`: "1",
		`flowctl_controlplane_component_healthy{component="sink.out"}`:         "0",
	} {
		if got := metricLine(body, sample); got != want {
			t.Errorf("%s = %q, want %q", sample, got, want)
		}
	}
	if !strings.Contains(body, "process_resident_memory_bytes") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics lacks the process and runtime collectors")
	}
	if !strings.Contains(body, `flowctl_controlplane_component_last_heartbeat_timestamp_seconds{component="source.ledger"}`) {
		t.Errorf("/metrics lacks the last heartbeat of source.ledger")
	}
}

func TestForgedTokenIsRefusedCountedAndNeverLogged(t *testing.T) {
	store := newState(t)
	s := start(t, store, Options{})
	other, err := tokens.NewSecret([]byte("another-secret-0123456789abcdefXYZ"))
	if err != nil {
		t.Fatal(err)
	}
	forged := token(t, store, tokens.NewIssuer(other), "source.ledger", "i-ledger")
	c := dial(t, s.addrs.GRPC, nil)
	_, err = c.v1.RegisterComponent(as(forged), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "bad_signature") {
		t.Fatalf("forged token: %v", err)
	}
	// Required mode: no token at all.
	_, err = c.legacy.Register(as(""), &flowctlpb.ServiceInfo{ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_SOURCE})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	_, body := get(t, nil, "http://"+s.addrs.HTTP+"/metrics", "")
	for sample, want := range map[string]string{
		`flowctl_controlplane_refusals_total{reason="bad_signature"}`: "1",
		`flowctl_controlplane_refusals_total{reason="missing"}`:       "1",
		"flowctl_controlplane_registrations_total":                    "0",
	} {
		if got := metricLine(body, sample); got != want {
			t.Errorf("%s = %q, want %q", sample, got, want)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(tokens.DefaultSecretPath(store.Path()))
	if err != nil {
		t.Fatal(err)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "bad_signature") {
		t.Fatalf("the refusal is not logged:\n%s", logs)
	}
	for name, secretText := range map[string]string{"forged token": forged, "signature": forged[strings.LastIndexByte(forged, '.')+1:], "secret": string(secret)} {
		if strings.Contains(logs, secretText) {
			t.Errorf("the logs contain the %s", name)
		}
	}
}

func TestSecretFileCreatedPrivateAndOperatorTokenToo(t *testing.T) {
	store := newState(t)
	start(t, store, Options{})
	for _, path := range []string{tokens.DefaultSecretPath(store.Path()), DefaultOperatorTokenPath(store.Path())} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", path, fi.Mode().Perm())
		}
	}
}

func TestOperatorEndpointsRequireTheOperatorTokenOffLoopback(t *testing.T) {
	store := newState(t)
	const opTok = "operator-token-for-the-test-0123456789"
	// A wildcard address is reachable from other machines: the rule
	// applies to every request, even one that comes in by loopback.
	s := start(t, store, Options{HTTPListen: "0.0.0.0:0", OperatorToken: opTok})
	base := "http://" + DialAddr(s.addrs.HTTP)
	for _, path := range []string{"/v1/status", "/metrics"} {
		if code, _ := get(t, nil, base+path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", path, code)
		}
		if code, _ := get(t, nil, base+path, "wrong-token-0123456789"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
		if code, _ := get(t, nil, base+path, opTok); code != http.StatusOK {
			t.Errorf("%s with the operator token: %d, want 200", path, code)
		}
	}
	if code, _ := get(t, nil, base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz without a token: %d, want 200", code)
	}
	if strings.Contains(s.logs.String(), opTok) {
		t.Errorf("the operator token is in the logs")
	}
}

func TestOperatorTokenFromTheDefaultFile(t *testing.T) {
	store := newState(t)
	s := start(t, store, Options{HTTPListen: "0.0.0.0:0"})
	b, err := os.ReadFile(DefaultOperatorTokenPath(store.Path()))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + DialAddr(s.addrs.HTTP)
	if code, _ := get(t, nil, base+"/v1/status", strings.TrimSpace(string(b))); code != http.StatusOK {
		t.Fatalf("with the file's token: %d", code)
	}
	if code, _ := get(t, nil, base+"/v1/status", ""); code != http.StatusUnauthorized {
		t.Fatalf("without: %d", code)
	}
}

func TestRequiresOperatorToken(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", false},
		{"127.0.0.2", false}, // all of 127/8 is loopback
		{"::1", false},
		{"0.0.0.0", true}, // every interface
		{"::", true},
		{"192.168.1.5", true},
		{"10.0.0.1", true},
	} {
		if got := requiresOperatorToken(&net.TCPAddr{IP: net.ParseIP(tc.ip), Port: 8081}); got != tc.want {
			t.Errorf("%s: %t, want %t", tc.ip, got, tc.want)
		}
	}
}

func TestTLS(t *testing.T) {
	p := newPKI(t)
	store := newState(t)
	s := start(t, store, Options{TLSCert: p.certFile, TLSKey: p.keyFile})
	if !s.addrs.TLS || s.addrs.ClientAuth {
		t.Fatalf("addrs %+v", s.addrs)
	}
	iss := issuer(t, store)
	tok := token(t, store, iss, "source.ledger", "i-ledger")
	c := dial(t, s.addrs.GRPC, credentials.NewTLS(&tls.Config{RootCAs: p.pool}))
	if _, err := c.v1.RegisterComponent(as(tok), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	plain := dial(t, s.addrs.GRPC, nil)
	if _, err := plain.v1.RegisterComponent(as(tok), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plain text to a TLS server: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}
	if code, body := get(t, hc, "https://"+s.addrs.HTTP+"/v1/status", ""); code != 200 || !strings.Contains(body, `"tls": true`) {
		t.Fatalf("https /v1/status: %d %s", code, body)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	store := newState(t)
	s := start(t, store, Options{TLSCert: p.certFile, TLSKey: p.keyFile, TLSClientCA: p.caFile})
	if !s.addrs.TLS || !s.addrs.ClientAuth {
		t.Fatalf("addrs %+v", s.addrs)
	}
	tok := token(t, store, issuer(t, store), "source.ledger", "i-ledger")
	req := &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}}

	withCert := dial(t, s.addrs.GRPC, credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.clientCert}}))
	if _, err := withCert.v1.RegisterComponent(as(tok), req); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "another CA's certificate": {p.otherCACert}} {
		c := dial(t, s.addrs.GRPC, credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: certs}))
		if _, err := c.v1.RegisterComponent(as(tok), req); status.Code(err) != codes.Unavailable {
			t.Errorf("gRPC with %s: %v, want Unavailable", name, err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: certs}}}
		if _, err := hc.Get("https://" + s.addrs.HTTP + "/healthz"); err == nil {
			t.Errorf("HTTP with %s: accepted", name)
		}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.clientCert}}}}
	if code, _ := get(t, hc, "https://"+s.addrs.HTTP+"/healthz", ""); code != 200 {
		t.Fatalf("https with a client certificate: %d", code)
	}
}

func TestTLSOptionsValidated(t *testing.T) {
	p := newPKI(t)
	store := newState(t)
	for name, o := range map[string]Options{
		"cert without key":         {TLSCert: p.certFile},
		"client CA without cert":   {TLSClientCA: p.caFile},
		"client CA missing":        {TLSCert: p.certFile, TLSKey: p.keyFile, TLSClientCA: p.keyFile + ".missing"},
		"key of another cert":      {TLSCert: p.certFile, TLSKey: p.clientKeyFile},
		"unknown auth mode":        {AuthMode: "lenient"},
		"operator token too short": {OperatorToken: "short", HTTPListen: "127.0.0.1:0"},
	} {
		o.StatePath, o.Listen, o.MemoryLimit = store.Path(), "127.0.0.1:0", -1
		if err := Run(t.Context(), o); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
	if rec, err := ReadRecord(store); err != nil || rec != nil {
		t.Fatalf("a failed Run left a record: %+v %v", rec, err)
	}
}

func TestServeRecordWhileRunningAndRemovedAfter(t *testing.T) {
	store := newState(t)
	s := start(t, store, Options{})
	rec, err := Running(store)
	if err != nil || rec == nil {
		t.Fatalf("running record: %+v %v", rec, err)
	}
	if rec.Process.PID != os.Getpid() || rec.GRPC != s.addrs.GRPC || rec.HTTP != s.addrs.HTTP || rec.AuthMode != controlplane.AuthRequired || rec.Endpoint() != s.addrs.GRPC {
		t.Fatalf("record %+v, addrs %+v", rec, s.addrs)
	}
	// A second control plane for the same state file is refused.
	err = Run(t.Context(), Options{StatePath: store.Path(), Listen: "127.0.0.1:0", MemoryLimit: -1})
	var re *RunningError
	if !errors.As(err, &re) || re.Record.RunID != rec.RunID {
		t.Fatalf("second serve: %v", err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if rec, err := ReadRecord(store); err != nil || rec != nil {
		t.Fatalf("record after a clean stop: %+v %v", rec, err)
	}
}

func TestStaleServeRecordIsReplaced(t *testing.T) {
	store := newState(t)
	self, err := procinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	dead := Record{Process: procinfo.Identity{PID: self.PID, StartTicks: self.StartTicks + 1}, Host: host, RunID: "dead", Addrs: Addrs{GRPC: "127.0.0.1:1"}}
	v, _ := json.Marshal(&dead)
	if err := store.Update(func(tx *state.Tx) error { return tx.PutData(RecordNamespace, RecordKey, v) }); err != nil {
		t.Fatal(err)
	}
	if rec, _ := Running(store); rec != nil {
		t.Fatalf("a dead record reads as running: %+v", rec)
	}
	s := start(t, store, Options{})
	rec, err := Running(store)
	if err != nil || rec == nil || rec.RunID == "dead" || rec.GRPC != s.addrs.GRPC {
		t.Fatalf("record %+v %v", rec, err)
	}
}

func TestRotatedSecretIsReloaded(t *testing.T) {
	store := newState(t)
	s := start(t, store, Options{SecretCheckInterval: 20 * time.Millisecond})
	old := token(t, store, issuer(t, store), "source.ledger", "i-ledger")
	c := dial(t, s.addrs.GRPC, nil)
	resp, err := c.v1.RegisterComponent(as(old), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.RotateSecretFile(tokens.DefaultSecretPath(store.Path())); err != nil {
		t.Fatal(err)
	}
	// serve notices the new file at its next check.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.v1.Heartbeat(as(old), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId})
		if err != nil {
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "bad_signature") {
				t.Fatalf("old token after rotation: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old token is still accepted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fresh := token(t, store, issuer(t, store), "source.ledger", "i-ledger")
	if _, err := c.v1.Heartbeat(as(fresh), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId}); err != nil {
		t.Fatalf("new token: %v", err)
	}
}

func TestDefaultHTTPListen(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8081",
		"0.0.0.0:9000":   "0.0.0.0:9001",
		"127.0.0.1:0":    "127.0.0.1:0",
		"[::1]:8080":     "[::1]:8081",
		":8080":          ":8081",
	} {
		got, err := DefaultHTTPListen(in)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"8080", "127.0.0.1:65535"} {
		if _, err := DefaultHTTPListen(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		"[::]:8080":      "[::1]:8080",
		":8080":          "127.0.0.1:8080",
		"10.1.2.3:8080":  "10.1.2.3:8080",
	} {
		if got := DialAddr(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}
