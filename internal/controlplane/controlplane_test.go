package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

func TestV1RegisterHeartbeatStatusListDiscover(t *testing.T) {
	h := newHarness(t)
	ctx := as(h.ledgerTok())
	resp, err := h.v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{
		Id: "ledger", Name: "stellar-live-source", Version: "1.2.3", Type: flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE,
		OutputEventTypes: []string{"stellar.ledger.v1"}, Endpoint: "127.0.0.1:50051", Metadata: map[string]string{"network": "testnet"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ServiceId != "ledger" {
		t.Fatalf("service id %q", resp.ServiceId)
	}
	if len(resp.ConnectionInfo) != 0 {
		t.Fatalf("fresh token refreshed: %v", resp.ConnectionInfo)
	}
	h.clock.Advance(30 * time.Second)
	if _, err := h.v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "ledger", Metrics: map[string]string{"events": "42"}}); err != nil {
		t.Fatal(err)
	}
	st, err := h.v1.GetComponentStatus(ctx, &flowctlv1.ComponentStatusRequest{ServiceId: "ledger"})
	if err != nil {
		t.Fatal(err)
	}
	// An SDK component reports UNKNOWN; alive, it reads as HEALTHY.
	if st.Status != flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY || st.Metrics["events"] != "42" ||
		st.Component.GetEndpoint() != "127.0.0.1:50051" || !st.RegisteredAt.AsTime().Equal(t0) ||
		!st.LastHeartbeat.AsTime().Equal(t0.Add(30*time.Second)) {
		t.Fatalf("status %v", st)
	}
	r := h.reg("ledger")
	if r.Component != "source.ledger" || r.AttributedBy != ByToken || r.Auth != AuthToken || r.InstanceID != "i-ledger" ||
		r.Protocol != ProtocolV1 || r.Type != TypeSource || !r.Alive || !r.Healthy || r.Heartbeats != 1 || r.Cadence.D() != 30*time.Second {
		t.Fatalf("registration %+v", r)
	}

	list, err := h.v1.ListComponents(ctx, &flowctlv1.ListComponentsRequest{})
	if err != nil || len(list.Components) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	for _, tc := range []struct {
		req  *flowctlv1.DiscoveryRequest
		want int
	}{
		{&flowctlv1.DiscoveryRequest{}, 1},
		{&flowctlv1.DiscoveryRequest{Type: flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE}, 1},
		{&flowctlv1.DiscoveryRequest{Type: flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER}, 0},
		{&flowctlv1.DiscoveryRequest{EventTypes: []string{"other", "stellar.ledger.v1"}}, 1},
		{&flowctlv1.DiscoveryRequest{EventTypes: []string{"other"}}, 0},
		{&flowctlv1.DiscoveryRequest{MetadataFilters: map[string]string{"network": "testnet"}}, 1},
		{&flowctlv1.DiscoveryRequest{MetadataFilters: map[string]string{"network": "pubnet"}}, 0},
	} {
		d, err := h.v1.DiscoverComponents(ctx, tc.req)
		if err != nil || len(d.Components) != tc.want {
			t.Fatalf("discover %v: %v %v", tc.req, d, err)
		}
		if tc.want == 1 && d.Components[0].Id != "ledger" {
			t.Fatalf("discovered %v", d.Components[0])
		}
	}
}

func TestLegacyRegisterHeartbeatStatusList(t *testing.T) {
	h := newHarness(t, permissive)
	ctx := context.Background() // older components send no token
	ack, err := h.legacy.Register(ctx, &flowctlpb.ServiceInfo{
		ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR, InputEventTypes: []string{"ledger"}, OutputEventTypes: []string{"ttp"},
		HealthEndpoint: "http://localhost:18089/health", MaxInflight: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ack.ServiceId, "svc-") {
		t.Fatalf("assigned id %q", ack.ServiceId)
	}
	for i := 0; i < 3; i++ {
		h.clock.Advance(10 * time.Second)
		if _, err := h.legacy.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId, Metrics: map[string]float64{"processed": float64(i), "lag": 0.5}}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := h.legacy.GetServiceStatus(ctx, &flowctlpb.ServiceInfo{ServiceId: ack.ServiceId})
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsHealthy || st.Metrics["processed"] != 2 || st.Metrics["lag"] != 0.5 || st.ComponentId != "ttp" ||
		st.ServiceType != flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR || !st.LastHeartbeat.AsTime().Equal(t0.Add(30*time.Second)) {
		t.Fatalf("status %v", st)
	}
	// By component id when no service id is given.
	st2, err := h.legacy.GetServiceStatus(ctx, &flowctlpb.ServiceInfo{ComponentId: "ttp"})
	if err != nil || st2.ServiceId != ack.ServiceId {
		t.Fatalf("by component id: %v %v", st2, err)
	}
	r := h.reg(ack.ServiceId)
	if r.Component != "processor.ttp" || r.AttributedBy != ByHealthPort || r.Auth != AuthUnauthenticated ||
		r.Protocol != ProtocolLegacy || r.MaxInflight != 100 || r.Cadence.D() != 10*time.Second || r.Metrics["lag"] != "0.5" {
		t.Fatalf("registration %+v", r)
	}
	// Both protocols see both kinds of registration.
	if _, err := h.v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "out", Type: flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER}}); err != nil {
		t.Fatal(err)
	}
	ls, err := h.legacy.ListServices(ctx, &emptypb.Empty{})
	if err != nil || len(ls.Services) != 2 {
		t.Fatalf("list services %v %v", ls, err)
	}
	lc, err := h.v1.ListComponents(ctx, &flowctlv1.ListComponentsRequest{IncludeUnhealthy: true})
	if err != nil || len(lc.Components) != 2 {
		t.Fatalf("list components %v %v", lc, err)
	}
	lc, _ = h.v1.ListComponents(ctx, &flowctlv1.ListComponentsRequest{TypeFilter: flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER, IncludeUnhealthy: true})
	if len(lc.Components) != 1 || lc.Components[0].Component.Id != "out" {
		t.Fatalf("type filter %v", lc)
	}
	// Unknown ids.
	_, err = h.legacy.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: "nope"})
	if c := codeOf(err); c != codes.NotFound {
		t.Fatalf("unknown heartbeat: %v", err)
	}
	if _, err := h.v1.GetComponentStatus(ctx, &flowctlv1.ComponentStatusRequest{ServiceId: "nope"}); codeOf(err) != codes.NotFound {
		t.Fatalf("unknown status: %v", err)
	}
}

func TestAttributionRules(t *testing.T) {
	h := newHarness(t, permissive)
	type reg func() (string, error)
	legacy := func(ctx context.Context, si *flowctlpb.ServiceInfo) reg {
		return func() (string, error) {
			a, err := h.legacy.Register(ctx, si)
			return a.GetServiceId(), err
		}
	}
	v1 := func(ctx context.Context, rr *flowctlv1.RegisterRequest) reg {
		return func() (string, error) {
			a, err := h.v1.RegisterComponent(ctx, rr)
			return a.GetServiceId(), err
		}
	}
	bg := context.Background()
	cases := []struct {
		name      string
		do        reg
		component string
		by        Attribution
		auth      AuthState
	}{
		{"token (legacy, no id)", legacy(as(h.outTok()), &flowctlpb.ServiceInfo{}), "sink.out", ByToken, AuthToken},
		{"token wins over health port", legacy(as(h.ledgerTok()), &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18090/health"}), "source.ledger", ByToken, AuthToken},
		{"token (v1, non-pipeline id)", v1(as(h.ttpTok()), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "my-ttp"}}), "processor.ttp", ByToken, AuthToken},
		{"legacy component_id (field 8)", legacy(bg, &flowctlpb.ServiceInfo{ComponentId: "out"}), "sink.out", ByComponentID, AuthUnauthenticated},
		{"legacy component_id as address", legacy(bg, &flowctlpb.ServiceInfo{ComponentId: "processor.ttp", HealthEndpoint: "http://localhost:18088/health"}), "processor.ttp", ByComponentID, AuthUnauthenticated},
		{"v1 component_id (field 2)", v1(bg, &flowctlv1.RegisterRequest{ComponentId: "ledger"}), "source.ledger", ByComponentID, AuthUnauthenticated},
		{"v1 ComponentInfo.id", v1(bg, &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ttp"}}), "processor.ttp", ByComponentID, AuthUnauthenticated},
		{"health port", legacy(bg, &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18088/health"}), "source.ledger", ByHealthPort, AuthUnauthenticated},
		{"health port, unknown id", legacy(bg, &flowctlpb.ServiceInfo{ComponentId: "stranger", HealthEndpoint: "http://127.0.0.1:18090/health"}), "sink.out", ByHealthPort, AuthUnauthenticated},
		{"v1 health_endpoint metadata", v1(bg, &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Metadata: map[string]string{"health_endpoint": "http://localhost:18089/health"}}}), "processor.ttp", ByHealthPort, AuthUnauthenticated},
		{"unmanaged, no id", legacy(bg, &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:9999/health"}), "", Unmanaged, AuthUnauthenticated},
		{"unmanaged, foreign id", v1(bg, &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "someone-else"}}), "", Unmanaged, AuthUnauthenticated},
	}
	ids := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.do()
			if err != nil {
				t.Fatal(err)
			}
			ids[id] = true
			r := h.reg(id)
			if r.Component != tc.component || r.AttributedBy != tc.by || r.Auth != tc.auth {
				t.Fatalf("got component %q by %s auth %s; want %q by %s auth %s", r.Component, r.AttributedBy, r.Auth, tc.component, tc.by, tc.auth)
			}
		})
	}
	// Everything is listed, unmanaged included.
	ls, err := h.legacy.ListServices(bg, &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, s := range ls.Services {
		listed[s.ServiceId] = true
	}
	for id := range ids {
		if !listed[id] {
			t.Errorf("%s not listed", id)
		}
	}
	m := h.srv.Metrics()
	if m.Unmanaged != 2 || m.Unauthenticated == 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }

func TestRefusalsRequired(t *testing.T) {
	h := newHarness(t)
	other, _ := tokens.NewSecret([]byte("another-secret-0123456789abcdef!!"))
	forged, _ := tokens.NewIssuer(other).Issue(tokens.Subject{Address: "source.ledger", Pipeline: testPipeline, Lineage: testLineage, InstanceID: "i-ledger"})
	wrongAud := signWith(t, secretBytes, jwt.MapClaims{"iss": "flowctl", "aud": "someone-else", "sub": "source.ledger", "jti": "i-ledger", "pipeline": testPipeline, "lineage": testLineage, "iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix()})
	expired := signWith(t, secretBytes, jwt.MapClaims{"iss": "flowctl", "aud": tokens.ClaimAudience, "sub": "source.ledger", "jti": "i-ledger", "pipeline": testPipeline, "lineage": testLineage, "iat": t0.Add(-2 * time.Hour).Unix(), "exp": t0.Add(-time.Hour).Unix()})
	replaced := h.token("source.ledger", "i-ledger-old")
	destroyed := h.token("source.gone", "i-gone")

	reg := func(tok string, si *flowctlpb.ServiceInfo) error {
		_, err := h.legacy.Register(as(tok), si)
		return err
	}
	cases := []struct {
		name   string
		err    error
		code   codes.Code
		reason string
	}{
		{"no token", reg("", &flowctlpb.ServiceInfo{ComponentId: "ledger"}), codes.Unauthenticated, "missing"},
		{"forged signature", reg(forged, &flowctlpb.ServiceInfo{}), codes.Unauthenticated, "bad_signature"},
		{"wrong audience", reg(wrongAud, &flowctlpb.ServiceInfo{}), codes.Unauthenticated, "wrong_audience"},
		{"expired", reg(expired, &flowctlpb.ServiceInfo{}), codes.Unauthenticated, "expired"},
		{"garbage", reg("xyz", &flowctlpb.ServiceInfo{}), codes.Unauthenticated, "malformed"},
		{"another component's id", reg(h.outTok(), &flowctlpb.ServiceInfo{ComponentId: "ledger"}), codes.PermissionDenied, "impersonation"},
		{"another component's address", reg(h.outTok(), &flowctlpb.ServiceInfo{ServiceId: "source.ledger"}), codes.PermissionDenied, "impersonation"},
		{"replaced instance", reg(replaced, &flowctlpb.ServiceInfo{}), codes.PermissionDenied, "replaced_instance"},
		{"destroyed component", reg(destroyed, &flowctlpb.ServiceInfo{}), codes.PermissionDenied, "unknown_component"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantRefused(t, tc.err, tc.code, tc.reason) })
	}
	// Bad authorization syntax.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic abc")
	_, err := h.legacy.ListServices(ctx, &emptypb.Empty{})
	wantRefused(t, err, codes.Unauthenticated, "malformed")
	// Every method is guarded, reads and unimplemented ones too.
	_, err = h.legacy.ListServices(context.Background(), &emptypb.Empty{})
	wantRefused(t, err, codes.Unauthenticated, "missing")
	_, err = h.v1.ListComponents(context.Background(), &flowctlv1.ListComponentsRequest{})
	wantRefused(t, err, codes.Unauthenticated, "missing")
	_, err = h.legacy.CreatePipelineRun(context.Background(), &flowctlpb.CreatePipelineRunRequest{})
	wantRefused(t, err, codes.Unauthenticated, "missing")
	if _, err := h.legacy.CreatePipelineRun(as(h.ledgerTok()), &flowctlpb.CreatePipelineRunRequest{}); codeOf(err) != codes.Unimplemented {
		t.Fatalf("pipeline runs: %v", err)
	}

	// A registered component's heartbeats: only with its own token.
	resp, err := h.v1.RegisterComponent(as(h.ledgerTok()), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.v1.Heartbeat(as(h.outTok()), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	_, err = h.v1.Heartbeat(context.Background(), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId})
	wantRefused(t, err, codes.Unauthenticated, "missing")
	_, err = h.v1.Heartbeat(as(replaced), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "replaced_instance")
	_, err = h.v1.UnregisterComponent(as(h.outTok()), &flowctlv1.UnregisterRequest{ServiceId: resp.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	// Nor may another component's token take over its service id.
	_, err = h.v1.RegisterComponent(as(h.outTok()), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	if _, err := h.v1.Heartbeat(as(h.ledgerTok()), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId}); err != nil {
		t.Fatal(err)
	}
	if r := h.reg("ledger"); r.Heartbeats != 1 {
		t.Fatalf("heartbeats %d", r.Heartbeats)
	}

	// After a replacement (new instance in state), the old instance's token
	// is refused and the new one accepted.
	list := pipelineComponents()
	list[0].InstanceID = "i-ledger-2"
	h.expected.Set(list...)
	if err := h.srv.RefreshExpected(); err != nil {
		t.Fatal(err)
	}
	_, err = h.v1.Heartbeat(as(h.ledgerTok()), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "replaced_instance")
	if _, err := h.v1.RegisterComponent(as(h.token("source.ledger", "i-ledger-2")), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}}); err != nil {
		t.Fatal(err)
	}
	if r := h.reg("ledger"); r.InstanceID != "i-ledger-2" || r.Heartbeats != 0 {
		t.Fatalf("re-registration %+v", r)
	}

	m := h.srv.Metrics()
	for reason, min := range map[string]uint64{"missing": 5, "bad_signature": 1, "wrong_audience": 1, "expired": 1, "malformed": 2, "impersonation": 5, "replaced_instance": 3, "unknown_component": 1} {
		if m.Refusals[reason] < min {
			t.Errorf("refusals[%s] = %d, want >= %d", reason, m.Refusals[reason], min)
		}
	}
}

func TestNewStartWithoutInstanceRefreshesExpected(t *testing.T) {
	// A token for an instance the server has not seen yet (an apply just
	// started it) is accepted once the expected list is re-read on demand.
	h := newHarness(t)
	list := pipelineComponents()
	list[1].InstanceID = "i-ttp-new"
	h.expected.Set(list...)
	h.clock.Advance(time.Second)
	if _, err := h.legacy.Register(as(h.token("processor.ttp", "i-ttp-new")), &flowctlpb.ServiceInfo{}); err != nil {
		t.Fatal(err)
	}
}

func TestPermissive(t *testing.T) {
	h := newHarness(t, permissive)
	ack, err := h.legacy.Register(context.Background(), &flowctlpb.ServiceInfo{ComponentId: "ledger"})
	if err != nil {
		t.Fatal(err)
	}
	if r := h.reg(ack.ServiceId); r.Auth != AuthUnauthenticated || r.Component != "source.ledger" {
		t.Fatalf("%+v", r)
	}
	// Invalid tokens are still refused.
	other, _ := tokens.NewSecret([]byte("another-secret-0123456789abcdef!!"))
	forged, _ := tokens.NewIssuer(other).Issue(tokens.Subject{Address: "source.ledger", Pipeline: testPipeline, Lineage: testLineage, InstanceID: "i-ledger"})
	_, err = h.legacy.Register(as(forged), &flowctlpb.ServiceInfo{})
	wantRefused(t, err, codes.Unauthenticated, "bad_signature")
	_, err = h.legacy.Register(as(h.token("source.ledger", "old")), &flowctlpb.ServiceInfo{})
	wantRefused(t, err, codes.PermissionDenied, "replaced_instance")
	// A token-registered service cannot be driven without its token.
	tr, err := h.v1.RegisterComponent(as(h.outTok()), &flowctlv1.RegisterRequest{ComponentId: "out"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.v1.Heartbeat(context.Background(), &flowctlv1.HeartbeatRequest{ServiceId: tr.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	_, err = h.v1.RegisterComponent(context.Background(), &flowctlv1.RegisterRequest{ComponentId: "out"})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	_, err = h.v1.UnregisterComponent(context.Background(), &flowctlv1.UnregisterRequest{ServiceId: tr.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	// A token for one component does not heartbeat a tokenless registration
	// of another, nor an unmanaged one.
	_, err = h.legacy.Heartbeat(as(h.outTok()), &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	um, _ := h.legacy.Register(context.Background(), &flowctlpb.ServiceInfo{})
	_, err = h.legacy.Heartbeat(as(h.outTok()), &flowctlpb.ServiceHeartbeat{ServiceId: um.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	// A token holder takes over an id held by an unmanaged tokenless
	// registration (itself, run earlier without its token), but not one
	// attributed to another component.
	if _, err := h.v1.RegisterComponent(context.Background(), &flowctlv1.RegisterRequest{ComponentId: "my-ttp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.v1.RegisterComponent(as(h.ttpTok()), &flowctlv1.RegisterRequest{ComponentId: "my-ttp"}); err != nil {
		t.Fatal(err)
	}
	if r := h.reg("my-ttp"); r.Auth != AuthToken || r.Component != "processor.ttp" {
		t.Fatalf("takeover: %+v", r)
	}
	byPort, err := h.legacy.Register(context.Background(), &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18088/health"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.legacy.Register(as(h.ttpTok()), &flowctlpb.ServiceInfo{ServiceId: byPort.ServiceId})
	wantRefused(t, err, codes.PermissionDenied, "impersonation")
	// Tokenless heartbeats of a tokenless registration are fine, and so is
	// unregistering it.
	if _, err := h.legacy.Heartbeat(context.Background(), &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.v1.UnregisterComponent(context.Background(), &flowctlv1.UnregisterRequest{ServiceId: um.ServiceId}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.srv.Lookup(um.ServiceId); ok {
		t.Fatal("still registered after unregister")
	}
}

func TestTokenRefresh(t *testing.T) {
	h := newHarness(t)
	tok := h.ledgerTok() // 10h lifetime, issued at t0
	var hdr metadata.MD
	resp, err := h.v1.RegisterComponent(as(tok), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ConnectionInfo[ConnectionInfoToken] != "" || len(hdr.Get(MetadataRefreshedToken)) != 0 {
		t.Fatal("refreshed before half-life")
	}
	h.clock.Advance(5*time.Hour + time.Second)
	hdr = nil
	if _, err := h.v1.Heartbeat(as(tok), &flowctlv1.HeartbeatRequest{ServiceId: "ledger"}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	fresh := hdr.Get(MetadataRefreshedToken)
	if len(fresh) != 1 || fresh[0] == tok {
		t.Fatalf("heartbeat header %v", hdr)
	}
	c, err := h.opts.Verifier.Verify(fresh[0])
	if err != nil || c.Subject != "source.ledger" || c.ID != "i-ledger" || !c.IssuedAt.Time.Equal(t0.Add(5*time.Hour+time.Second).Truncate(time.Second)) {
		t.Fatalf("fresh token %+v %v", c, err)
	}
	// The fresh token works and is not refreshed again.
	hdr = nil
	if _, err := h.v1.Heartbeat(as(fresh[0]), &flowctlv1.HeartbeatRequest{ServiceId: "ledger"}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if len(hdr.Get(MetadataRefreshedToken)) != 0 {
		t.Fatal("fresh token refreshed")
	}
	// Register responses carry it in connection_info: both protocols.
	resp, err = h.v1.RegisterComponent(as(tok), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}})
	if err != nil || resp.ConnectionInfo[ConnectionInfoToken] == "" {
		t.Fatalf("v1 register refresh: %v %v", resp, err)
	}
	ack, err := h.legacy.Register(as(h.token("sink.out", "i-out")), &flowctlpb.ServiceInfo{})
	if err != nil || ack.ConnectionInfo[ConnectionInfoToken] != "" {
		t.Fatalf("fresh legacy token refreshed: %v %v", ack, err)
	}
	h.clock.Advance(-5 * time.Hour)
	old := h.token("sink.out", "i-out")
	h.clock.Advance(5 * time.Hour)
	ack, err = h.legacy.Register(as(old), &flowctlpb.ServiceInfo{})
	if err != nil || ack.ConnectionInfo[ConnectionInfoToken] == "" {
		t.Fatalf("legacy register refresh: %v %v", ack, err)
	}
	if _, err := h.opts.Verifier.Verify(ack.ConnectionInfo[ConnectionInfoToken]); err != nil {
		t.Fatal(err)
	}
	if h.srv.Metrics().TokensRefreshed != 3 {
		t.Fatalf("refreshed %d", h.srv.Metrics().TokensRefreshed)
	}
}

func TestSecretAndTokensNeverLogged(t *testing.T) {
	h := newHarness(t, permissive)
	var seen []string
	tok := func(s string) string { seen = append(seen, s); return s }
	forgedSecret, _ := tokens.NewSecret([]byte("another-secret-0123456789abcdef!!"))
	forged, _ := tokens.NewIssuer(forgedSecret).Issue(tokens.Subject{Address: "source.ledger", Pipeline: testPipeline, Lineage: testLineage, InstanceID: "i-ledger"})
	calls := []func() error{
		func() error {
			_, err := h.legacy.Register(as(tok(h.ledgerTok())), &flowctlpb.ServiceInfo{})
			return err
		},
		func() error { _, err := h.legacy.Register(as(tok(forged)), &flowctlpb.ServiceInfo{}); return err },
		func() error {
			_, err := h.legacy.Register(as(tok(h.outTok())), &flowctlpb.ServiceInfo{ComponentId: "ledger"})
			return err
		},
		func() error {
			_, err := h.legacy.Register(as(tok(h.token("source.ledger", "old"))), &flowctlpb.ServiceInfo{})
			return err
		},
		func() error {
			_, err := h.legacy.Register(as(tok("not.a.token")), &flowctlpb.ServiceInfo{})
			return err
		},
		func() error {
			h.clock.Advance(6 * time.Hour)
			_, err := h.v1.RegisterComponent(as(tok(h.ttpTok())), &flowctlv1.RegisterRequest{ComponentId: "ttp"})
			h.clock.Advance(-6 * time.Hour)
			return err
		},
	}
	h.clock.Advance(-6 * time.Hour)
	ttpOld := tok(h.ttpTok())
	h.clock.Advance(6 * time.Hour)
	calls = append(calls, func() error {
		resp, err := h.v1.RegisterComponent(as(ttpOld), &flowctlv1.RegisterRequest{ComponentId: "ttp"})
		if err == nil {
			tok(resp.ConnectionInfo[ConnectionInfoToken])
		}
		return err
	})
	for _, c := range calls {
		_ = c()
	}
	h.srv.Flush()
	logs := h.logs.String()
	if !strings.Contains(logs, "refused") || !strings.Contains(logs, "registered") {
		t.Fatalf("expected refusals and registrations in the logs:\n%s", logs)
	}
	for _, s := range seen {
		if s == "" {
			continue
		}
		for _, part := range append([]string{s}, strings.Split(s, ".")...) {
			if len(part) >= 10 && strings.Contains(logs, part) {
				t.Fatalf("a token (or part of one) is in the logs: %q\n%s", part, logs)
			}
		}
	}
	for _, form := range []string{string(secretBytes), hex.EncodeToString(secretBytes), base64.StdEncoding.EncodeToString(secretBytes), base64.RawURLEncoding.EncodeToString(secretBytes)} {
		if strings.Contains(logs, form) {
			t.Fatal("the secret is in the logs")
		}
	}
}

func TestRegistrySurvivesRestart(t *testing.T) {
	store := tempStore(t)
	h := newHarness(t, permissive, withStore(store))
	v1ID, legacyID := registerBothProtocolsAndBeatTwice(t, h)
	before := h.srv.Snapshot()
	h.srv.Flush()
	// Readable without a server (flowctl status, apply).
	read, err := ReadRegistrations(store, h.clock.Now())
	if err != nil || len(read) != 2 {
		t.Fatalf("ReadRegistrations: %+v %v", read, err)
	}
	for i, r := range read {
		if r.ServiceID != before[i].ServiceID || r.Heartbeats != 2 || !r.Alive || r.Cadence != before[i].Cadence ||
			(r.Protocol == ProtocolLegacy) != (r.Metrics["m"] == "2.5") {
			t.Fatalf("ReadRegistrations: %+v", r)
		}
	}
	h.restart() // Close flushes; a new server loads the same state file
	after := h.srv.Snapshot()
	if len(after) != 2 {
		t.Fatalf("after restart: %+v", after)
	}
	for i := range before {
		if !sameAcrossRestart(before[i], after[i]) {
			t.Fatalf("registration changed across restart:\nbefore %+v\nafter  %+v", before[i], after[i])
		}
	}
	// Components carry on with the ids they were given.
	if _, err := h.legacy.Heartbeat(context.Background(), &flowctlpb.ServiceHeartbeat{ServiceId: legacyID}); err != nil {
		t.Fatal(err)
	}
	st, err := h.legacy.GetServiceStatus(context.Background(), &flowctlpb.ServiceInfo{ServiceId: legacyID})
	if err != nil || st.Metrics["m"] != 2.5 {
		t.Fatalf("legacy metrics after restart %v %v", st, err)
	}
	// Unregistration is persisted too.
	if _, err := h.v1.UnregisterComponent(as(h.ledgerTok()), &flowctlv1.UnregisterRequest{ServiceId: v1ID}); err != nil {
		t.Fatal(err)
	}
	h.restart()
	if got := h.srv.Snapshot(); len(got) != 1 || got[0].ServiceID != legacyID {
		t.Fatalf("after unregister and restart: %+v", got)
	}
}

// registerBothProtocolsAndBeatTwice registers the ledger over v1 (with its
// token) and a component over the legacy protocol, then heartbeats each
// twice, 10s apart, with metrics (v1: degraded). It returns both service
// ids.
func registerBothProtocolsAndBeatTwice(t *testing.T, h *harness) (v1ID, legacyID string) {
	t.Helper()
	resp, err := h.v1.RegisterComponent(as(h.ledgerTok()), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{
		Id: "ledger", Type: flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE, OutputEventTypes: []string{"x"}, Metadata: map[string]string{"k": "v"}, Endpoint: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := h.legacy.Register(context.Background(), &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18089/health"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		h.clock.Advance(10 * time.Second)
		if _, err := h.v1.Heartbeat(as(h.ledgerTok()), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId, Status: flowctlv1.HealthStatus_HEALTH_STATUS_DEGRADED, Metrics: map[string]string{"n": "1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.legacy.Heartbeat(context.Background(), &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId, Metrics: map[string]float64{"m": 2.5}}); err != nil {
			t.Fatal(err)
		}
	}
	return resp.ServiceId, ack.ServiceId
}

// sameAcrossRestart reports whether a registration reloaded from the state
// (a) is the one the previous server held (b).
func sameAcrossRestart(b, a Registration) bool {
	return a.ServiceID == b.ServiceID && a.Component == b.Component && a.AttributedBy == b.AttributedBy && a.Auth == b.Auth &&
		a.InstanceID == b.InstanceID && a.Protocol == b.Protocol && a.LastHeartbeat.Equal(b.LastHeartbeat) && a.Heartbeats == b.Heartbeats &&
		a.Cadence == b.Cadence && a.Status == b.Status && a.Metrics[firstKey(b.Metrics)] == b.Metrics[firstKey(b.Metrics)] &&
		a.RegisteredAt.Equal(b.RegisteredAt) && a.Alive == b.Alive && len(a.Metadata) == len(b.Metadata)
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}

func TestRegistrationWrittenAtOnce(t *testing.T) {
	store := tempStore(t)
	h := newHarness(t, permissive, withStore(store), func(_ *harness, o *Options) { o.FlushInterval = time.Hour })
	ack, err := h.legacy.Register(context.Background(), &flowctlpb.ServiceInfo{ComponentId: "out"})
	if err != nil {
		t.Fatal(err)
	}
	// Without waiting for a flush: a second reader of the state sees it.
	s2, err := New(Options{Store: store, Verifier: h.opts.Verifier})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, ok := s2.Lookup(ack.ServiceId); !ok {
		t.Fatal("registration not in state when Register returned")
	}
}

func TestAHeartbeatAsAComponentRegistersIsNoCadence(t *testing.T) {
	h := newHarness(t, permissive)
	ctx := context.Background()
	ack, _ := h.legacy.Register(ctx, &flowctlpb.ServiceInfo{ComponentId: "ttp"})
	h.clock.Advance(10 * time.Millisecond)
	h.legacy.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId})
	// Its next beat is 10s away: still alive then, on the default cadence.
	h.clock.Advance(10 * time.Second)
	if r := h.reg(ack.ServiceId); !r.Alive || r.Cadence.D() != 0 {
		t.Fatalf("dead, or a cadence from the beat at registration: %+v", r)
	}
	h.legacy.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId})
	if r := h.reg(ack.ServiceId); r.Cadence.D() != 10*time.Second {
		t.Fatalf("cadence %s after the second beat, want 10s", r.Cadence.D())
	}
}

func TestLiveness(t *testing.T) {
	h := newHarness(t, permissive)
	ctx := context.Background()
	ack, _ := h.legacy.Register(ctx, &flowctlpb.ServiceInfo{ComponentId: "ttp"})
	// Before any heartbeat: alive for 3 × the default cadence (30s).
	h.clock.Advance(89 * time.Second)
	if r := h.reg(ack.ServiceId); !r.Alive {
		t.Fatal("dead before 3 default cadences")
	}
	h.clock.Advance(2 * time.Second)
	if r := h.reg(ack.ServiceId); r.Alive || r.Healthy {
		t.Fatal("alive after 3 default cadences")
	}
	// Heartbeats every 10s: dead 30s after the last one.
	for i := 0; i < 5; i++ {
		h.legacy.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId})
		h.clock.Advance(10 * time.Second)
	}
	r := h.reg(ack.ServiceId)
	if !r.Alive || r.Cadence.D() < 10*time.Second || r.Cadence.D() > 40*time.Second {
		t.Fatalf("%+v", r)
	}
	// Cadence converges on 10s with more beats.
	for i := 0; i < 20; i++ {
		h.legacy.Heartbeat(ctx, &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId})
		h.clock.Advance(10 * time.Second)
	}
	if c := h.reg(ack.ServiceId).Cadence.D(); c < 10*time.Second || c > 11*time.Second {
		t.Fatalf("cadence %s", c)
	}
	h.clock.Advance(19 * time.Second) // 29s since the last beat
	st, _ := h.legacy.GetServiceStatus(ctx, &flowctlpb.ServiceInfo{ServiceId: ack.ServiceId})
	if !st.IsHealthy {
		t.Fatal("unhealthy within 3 cadences")
	}
	h.clock.Advance(2 * time.Second)
	st, _ = h.legacy.GetServiceStatus(ctx, &flowctlpb.ServiceInfo{ServiceId: ack.ServiceId})
	if st.IsHealthy {
		t.Fatal("healthy after 3 missed cadences")
	}

	// v1: UNKNOWN from a heartbeating component is alive and healthy;
	// reported UNHEALTHY is alive but not healthy; dead reads UNHEALTHY.
	h.v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: "ledger"})
	h.clock.Advance(30 * time.Second)
	h.v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "ledger", Status: flowctlv1.HealthStatus_HEALTH_STATUS_UNKNOWN})
	if r := h.reg("ledger"); !r.Alive || !r.Healthy {
		t.Fatalf("UNKNOWN: %+v", r)
	}
	h.v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "ledger", Status: flowctlv1.HealthStatus_HEALTH_STATUS_UNHEALTHY})
	if r := h.reg("ledger"); !r.Alive || r.Healthy {
		t.Fatalf("UNHEALTHY: %+v", r)
	}
	lc, _ := h.v1.ListComponents(ctx, &flowctlv1.ListComponentsRequest{})
	if len(lc.Components) != 0 {
		t.Fatalf("unhealthy listed without include_unhealthy: %v", lc)
	}
	h.v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "ledger", Status: flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY})
	h.clock.Advance(10 * time.Minute)
	st2, _ := h.v1.GetComponentStatus(ctx, &flowctlv1.ComponentStatusRequest{ServiceId: "ledger"})
	if st2.Status != flowctlv1.HealthStatus_HEALTH_STATUS_UNHEALTHY {
		t.Fatalf("dead component status %v", st2.Status)
	}
	d, _ := h.v1.DiscoverComponents(ctx, &flowctlv1.DiscoveryRequest{})
	if len(d.Components) != 0 {
		t.Fatalf("dead components discovered: %v", d)
	}
}

func TestObserveCadence(t *testing.T) {
	s := time.Second
	if got := observeCadence(0, 10*s); got != 10*s {
		t.Fatal(got)
	}
	if got := observeCadence(10*s, 10*s); got != 10*s {
		t.Fatal(got)
	}
	// A long gap (missed beats) is capped at 4× the average.
	if got := observeCadence(10*s, time.Hour); got != (30*s+40*s)/4 {
		t.Fatal(got)
	}
}

func TestSupersede(t *testing.T) {
	h := newHarness(t, permissive)
	ctx := context.Background()
	// An older component restarts: no id, same health endpoint.
	a1, _ := h.legacy.Register(ctx, &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18088/health"})
	a2, _ := h.legacy.Register(ctx, &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18088/health"})
	if a1.ServiceId == a2.ServiceId {
		t.Fatal("same assigned id")
	}
	if _, ok := h.srv.Lookup(a1.ServiceId); ok {
		t.Fatal("restarted component's old registration kept")
	}
	// Unmanaged ones with the same endpoint are not merged (nothing ties them).
	u1, _ := h.legacy.Register(ctx, &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:9999/health"})
	h.legacy.Register(ctx, &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:9999/health"})
	if _, ok := h.srv.Lookup(u1.ServiceId); !ok {
		t.Fatal("unmanaged registration dropped")
	}
	// A tokenless registration never pushes out an authenticated one.
	t1, _ := h.legacy.Register(as(h.outTok()), &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18090/health"})
	h.legacy.Register(ctx, &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18090/health"})
	if _, ok := h.srv.Lookup(t1.ServiceId); !ok {
		t.Fatal("authenticated registration pushed out")
	}
	// The same instance registering again (token) supersedes itself.
	h.clock.Advance(time.Second)
	t2, _ := h.legacy.Register(as(h.outTok()), &flowctlpb.ServiceInfo{})
	if _, ok := h.srv.Lookup(t1.ServiceId); ok || t2 == nil {
		t.Fatal("same instance's registration kept")
	}
	if got := h.srv.ByComponent("sink.out"); len(got) != 2 || got[0].ServiceID != t2.ServiceId {
		t.Fatalf("by component %+v", got)
	}
}

func TestPrune(t *testing.T) {
	h := newHarness(t, permissive, func(_ *harness, o *Options) { o.ForgetAfter = time.Hour })
	ack, _ := h.legacy.Register(context.Background(), &flowctlpb.ServiceInfo{})
	h.clock.Advance(30 * time.Minute)
	h.srv.prune(h.clock.Now())
	if _, ok := h.srv.Lookup(ack.ServiceId); !ok {
		t.Fatal("pruned too early")
	}
	h.clock.Advance(2 * time.Hour)
	h.srv.prune(h.clock.Now())
	if _, ok := h.srv.Lookup(ack.ServiceId); ok {
		t.Fatal("not pruned")
	}
}

func TestConcurrentHeartbeats(t *testing.T) {
	store := tempStore(t)
	h := newHarness(t, withStore(store), func(_ *harness, o *Options) { o.FlushInterval = 20 * time.Millisecond })
	toks := map[string]string{"ledger": h.ledgerTok(), "ttp": h.ttpTok(), "out": h.outTok()}
	var wg sync.WaitGroup
	for id, tok := range toks {
		if _, err := h.v1.RegisterComponent(as(tok), &flowctlv1.RegisterRequest{ComponentId: id}); err != nil {
			t.Fatal(err)
		}
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					if _, err := h.v1.Heartbeat(as(tok), &flowctlv1.HeartbeatRequest{ServiceId: id, Metrics: map[string]string{"i": "1"}}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 50; i++ {
			h.srv.Snapshot()
			h.srv.Metrics()
			h.legacy.ListServices(as(h.outTok()), &emptypb.Empty{})
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	if m := h.srv.Metrics(); m.Heartbeats != 1200 || m.Flushes == 0 || m.FlushErrors != 0 {
		t.Fatalf("metrics %+v", m)
	}
	h.restart()
	for id := range toks {
		if r := h.reg(id); r.Heartbeats != 400 {
			t.Fatalf("%s: %d heartbeats persisted", id, r.Heartbeats)
		}
	}
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("no verifier accepted")
	}
	s, _ := tokens.NewSecret(secretBytes)
	if _, err := New(Options{Verifier: tokens.NewVerifier(s, "", ""), AuthMode: "open"}); err == nil {
		t.Fatal("bad auth mode accepted")
	}
	for in, want := range map[string]AuthMode{"": AuthRequired, "required": AuthRequired, "permissive": AuthPermissive} {
		if got, err := ParseAuthMode(in); err != nil || got != want {
			t.Fatalf("%q: %v %v", in, got, err)
		}
	}
	for in, want := range map[string]int{"http://localhost:8088/health": 8088, "http://[::1]:9/x": 9, "localhost:7000": 7000, "127.0.0.1:7000/health": 7000, "http://host/health": 0, "": 0, "junk": 0} {
		if got := healthPortOf(in); got != want {
			t.Fatalf("healthPortOf(%q) = %d", in, got)
		}
	}
}

func signWith(t *testing.T, key []byte, m jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, m).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStateExpected(t *testing.T) {
	store := tempStore(t)
	put := func(addr, id, inst string, hp int) {
		t.Helper()
		err := store.Update(func(tx *state.Tx) error {
			return tx.PutComponent(&state.Record{Address: addr, Kind: strings.Split(addr, ".")[0], ID: id, Provider: "process",
				InstanceID: inst, Ports: map[string]int{"HEALTH_PORT": hp, "PORT": hp + 1}, Status: state.StatusRunning})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("source.ledger", "ledger", "i-ledger", 18088)
	put("sink.out", "out", "i-out", 18090)
	var lineage string
	store.View(func(tx *state.Tx) error { lineage = tx.Meta().Lineage; return nil })

	list, err := StateExpected(store).ExpectedComponents()
	if err != nil || len(list) != 2 || !list[0].equal(&ExpectedComponent{Address: "sink.out", ID: "out", HealthPort: 18090, InstanceID: "i-out", Provider: "process"}) {
		t.Fatalf("%+v %v", list, err)
	}

	secret, _ := tokens.NewSecret(secretBytes)
	issuer := tokens.NewIssuer(secret)
	srv, err := New(Options{
		Store: store, Verifier: tokens.NewVerifier(secret, testPipeline, lineage), Issuer: issuer,
		Expected: StateExpected(store), AuthMode: AuthPermissive,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tok, _ := issuer.Issue(tokens.Subject{Address: "source.ledger", Pipeline: testPipeline, Lineage: lineage, InstanceID: "i-ledger"})
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	v1 := &v1Service{s: srv}
	if _, err := v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: "ledger"}); err != nil {
		t.Fatal(err)
	}
	// Attribution by health port from the state's Ports.
	legacy := &legacyService{s: srv}
	ack, err := legacy.Register(context.Background(), &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:18090/health"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := srv.Lookup(ack.ServiceId); r.Component != "sink.out" || r.AttributedBy != ByHealthPort {
		t.Fatalf("%+v", r)
	}
	// Destroyed: the record is gone; its token is refused.
	store.Update(func(tx *state.Tx) error { return tx.DeleteComponent("source.ledger") })
	if err := srv.RefreshExpected(); err != nil {
		t.Fatal(err)
	}
	_, err = v1.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "ledger"})
	wantRefused(t, err, codes.PermissionDenied, "unknown_component")
	// The registrations are in the same state file, beside the records.
	// (The refusal is kept too, under x/: see TestRefusalsAreKeptPerComponent.)
	var keys []string
	store.View(func(tx *state.Tx) error {
		return tx.ForEachData(Namespace, func(k string, _ []byte) error {
			if !strings.HasPrefix(k, refusalPrefix) {
				keys = append(keys, k)
			}
			return nil
		})
	})
	if len(keys) != 4 {
		t.Fatalf("persisted keys %v", keys)
	}
}

func TestPendingInstanceIsAccepted(t *testing.T) {
	// A component may register before apply has recorded its instance: a
	// fresh token naming an instance state does not have yet waits for it.
	h := newHarness(t, func(_ *harness, o *Options) { o.PendingWait = time.Minute })
	done := make(chan error, 1)
	go func() {
		_, err := h.v1.RegisterComponent(as(h.token("processor.ttp", "i-ttp-next")), &flowctlv1.RegisterRequest{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("answered before the instance was recorded: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	list := pipelineComponents()
	list[1].InstanceID = "i-ttp-next"
	h.expected.Set(list...)
	h.clock.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
