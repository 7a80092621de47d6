package controlplane

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// An unmanaged registration is not left so: once the state names the
// component it matches, it is attributed to it.
func TestUnmanagedRegistrationIsReattributedWhenTheStateCatchesUp(t *testing.T) {
	h := newHarness(t, permissive)
	ack, err := h.legacy.Register(as(""), &flowctlpb.ServiceInfo{HealthEndpoint: "http://localhost:19999/health"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.reg(ack.GetServiceId())
	if r.Component != "" || r.Proof != ProofUnproven || !strings.Contains(r.Unattributed, "matches no component's HEALTH_PORT") {
		t.Fatalf("registration %+v", r)
	}
	h.expected.Set(append(pipelineComponents(), ExpectedComponent{Address: "source.late", ID: "late", HealthPort: 19999, InstanceID: "i-late"})...)
	if err := h.srv.RefreshExpected(); err != nil {
		t.Fatal(err)
	}
	// No wall-clock bound: a re-attribution that never comes hangs until
	// go test's timeout rather than fail on a slow machine.
	deadline := time.Now().Add(time.Hour)
	for h.reg(ack.GetServiceId()).Component != "source.late" {
		if time.Now().After(deadline) {
			t.Fatalf("not re-attributed: %+v", h.reg(ack.GetServiceId()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := h.reg(ack.GetServiceId()); r.AttributedBy != ByHealthPort || r.Unattributed != "" || r.Proof != ProofUnproven {
		t.Fatalf("re-attributed as %+v", r)
	}
}

// A component's own auth beats the server's, both ways.
func TestComponentAuthOverridesTheServerMode(t *testing.T) {
	list := pipelineComponents()
	list[1].Auth = AuthTokenOnly  // processor.ttp
	list[2].Auth = AuthPermissive // sink.out
	t.Run("permissive server, token component", func(t *testing.T) {
		h := newHarness(t, permissive)
		h.expected.Set(list...)
		_ = h.srv.RefreshExpected()
		_, err := h.v1.RegisterComponent(as(""), &flowctlv1.RegisterRequest{ComponentId: "ttp"})
		wantRefused(t, err, codes.Unauthenticated, "missing")
		if !strings.Contains(err.Error(), "auth = token") {
			t.Fatalf("refusal does not say the mode: %v", err)
		}
		resp, err := h.v1.RegisterComponent(as(""), &flowctlv1.RegisterRequest{ComponentId: "ledger"})
		if err != nil {
			t.Fatal(err)
		}
		if r := h.reg(resp.GetServiceId()); r.Component != "source.ledger" || r.Proof != ProofUnproven {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("required server, permissive component", func(t *testing.T) {
		h := newHarness(t)
		h.expected.Set(list...)
		_ = h.srv.RefreshExpected()
		resp, err := h.v1.RegisterComponent(as(""), &flowctlv1.RegisterRequest{ComponentId: "out"})
		if err != nil {
			t.Fatal(err)
		}
		if r := h.reg(resp.GetServiceId()); r.Component != "sink.out" || r.Auth != AuthUnauthenticated || r.Proof != ProofUnproven {
			t.Fatalf("%+v", r)
		}
		_, err = h.v1.RegisterComponent(as(""), &flowctlv1.RegisterRequest{ComponentId: "ledger"})
		wantRefused(t, err, codes.Unauthenticated, "missing")
	})
}

// Refusals are kept per component, in memory and in the state, for
// apply's wait.
func TestRefusalsAreKeptPerComponent(t *testing.T) {
	store := tempStore(t)
	h := newHarness(t, withStore(store))
	_, err := h.v1.RegisterComponent(as(""), &flowctlv1.RegisterRequest{ComponentId: "ttp"})
	wantRefused(t, err, codes.Unauthenticated, "missing")
	_, err = h.v1.RegisterComponent(as(h.ledgerTok()), &flowctlv1.RegisterRequest{ComponentId: "out"})
	wantRefused(t, err, codes.PermissionDenied, ReasonImpersonation)
	h.srv.Flush()
	got := map[string]Refusal{}
	list, err := ReadRefusals(store)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range list {
		got[f.Component] = f
	}
	if f := got["processor.ttp"]; f.Reason != "missing" || !strings.Contains(f.Detail, "could not be attested because") {
		t.Fatalf("refusal of processor.ttp: %+v", f)
	}
	if f := got["source.ledger"]; f.Reason != ReasonImpersonation || f.InstanceID != "i-ledger" {
		t.Fatalf("refusal of source.ledger: %+v", f)
	}
	if len(h.srv.Refusals()) != 2 {
		t.Fatalf("in memory: %+v", h.srv.Refusals())
	}
	// The registry still loads: refusals are no registrations.
	regs, err := ReadRegistrations(store, time.Now())
	if err != nil || len(regs) != 0 {
		t.Fatalf("%+v %v", regs, err)
	}
}
