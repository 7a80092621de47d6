package kubernetes

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

func testSpec(policy string) providers.ComponentSpec {
	c := &config.Component{Kind: config.KindSource, ID: "ledger", Executor: Name, Image: "example/ledger:1", Replicas: 2,
		Env:     map[string]config.EnvValue{"NETWORK": {Value: "testnet"}, "DB_PASSWORD": {Value: "hunter2", Sensitive: true}},
		Health:  &config.Health{Type: config.HealthHTTP, Path: "/health", Liveness: true, FailureThreshold: 3, SuccessThreshold: 1},
		Restart: config.Restart{Policy: policy, MaxRetries: 4}, Ports: []config.Port{{Name: "metrics", ContainerPort: 9100, Protocol: "tcp"}}}
	return providers.ComponentSpec{Pipeline: "ttp", Lineage: "lin-1", InstanceID: "inst-1", SpecHash: "hash-1", Component: c,
		Env: map[string]string{"NETWORK": "testnet", "DB_PASSWORD": "hunter2", contract.EnvComponentToken: "tok.en.value",
			contract.EnvPlainComponentToken: "tok.en.value", contract.EnvEndpoint: "127.0.0.1:8080"},
		Ports: map[string]int{contract.EnvPort: 50051, contract.EnvHealthPort: 8088}}
}

func TestWorkloadNeverHoldsTheTokenOrASensitiveValue(t *testing.T) {
	spec := testSpec("always")
	o := build(&spec, "ns", "flowctl.ops:8080")
	b, err := json.Marshal(o.deployment)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"tok.en.value", "hunter2"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the Deployment holds %q:\n%s", secret, b)
		}
	}
	for _, want := range []string{`"secretKeyRef":{"name":"ttp-ledger-flowctl","key":"FLOWCTL_COMPONENT_TOKEN"}`,
		`"secretKeyRef":{"name":"ttp-ledger-flowctl","key":"DB_PASSWORD"}`,
		`{"name":"FLOWCTL_ENDPOINT","value":"flowctl.ops:8080"}`, `"replicas":2`,
		`"flowctl.io/spec-hash":"hash-1"`, `"app.kubernetes.io/managed-by":"flowctl"`, `"flowctl.io/lineage":"lin-1"`,
		`"readinessProbe":{"httpGet":{"path":"/health","port":8088}`, `"livenessProbe"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the Deployment lacks %s:\n%s", want, b)
		}
	}
	if o.secret.StringData["FLOWCTL_COMPONENT_TOKEN"] != "tok.en.value" || o.secret.StringData["DB_PASSWORD"] != "hunter2" {
		t.Errorf("the Secret holds %v", o.secret.StringData)
	}
	sb, _ := json.Marshal(o.service)
	for _, want := range []string{`"port":50051`, `"port":8088`, `"name":"metrics","protocol":"TCP","port":9100`} {
		if !strings.Contains(string(sb), want) {
			t.Errorf("the Service lacks %s:\n%s", want, sb)
		}
	}
}

func TestRestartPolicyChoosesTheWorkload(t *testing.T) {
	for policy, want := range map[string]string{"always": `"restartPolicy"`, "never": `"backoffLimit":0`, "on-failure": `"backoffLimit":4`} {
		spec := testSpec(policy)
		o := build(&spec, "ns", "")
		var b []byte
		if policy == "always" {
			if o.deployment == nil || o.job != nil {
				t.Fatalf("%s: want a Deployment", policy)
			}
			b, _ = json.Marshal(o.deployment)
			if strings.Contains(string(b), want) {
				t.Errorf("%s: a Deployment sets no restartPolicy:\n%s", policy, b)
			}
			continue
		}
		if o.job == nil || o.deployment != nil {
			t.Fatalf("%s: want a Job", policy)
		}
		b, _ = json.Marshal(o.job)
		if !strings.Contains(string(b), want) || !strings.Contains(string(b), `"parallelism":2`) {
			t.Errorf("%s: the Job lacks %s:\n%s", policy, want, b)
		}
	}
}

func TestLongNamesAreShortenedUniquely(t *testing.T) {
	long := strings.Repeat("p", 60)
	a, b := ObjectName(long, "ledger"), ObjectName(long, "ledgers")
	if len(a) > 63 || len(b) > 63 || a == b || !strings.HasPrefix(a, long[:40]) || !strings.HasSuffix(a, "-ledger") {
		t.Errorf("names %q and %q", a, b)
	}
	if c := ObjectName("p", strings.Repeat("x", 70)); len(c) > 63 {
		t.Errorf("a long id: %q", c)
	}
	if got := ObjectName("TTP", "Ledger_2"); got != "ttp-ledger_2" {
		t.Errorf("a short name is only lower-cased: %q", got)
	}
}
