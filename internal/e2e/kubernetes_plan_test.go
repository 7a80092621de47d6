package e2e

import (
	"strings"
	"testing"
)

// TestKubernetesPlanShowsWhatTheClusterWouldChange: after an env change
// and a scale change, plan prints (and plan -json holds) the paths the API
// server's dry run would change, never a value of the Secret.
func TestKubernetesPlanShowsWhatTheClusterWouldChange(t *testing.T) {
	kf := newKFixture(t, true)
	cs := []kcomp{{kind: "source", id: "ledger", env: map[string]string{"NETWORK": "testnet"}}}
	kf.writeK(cs)
	kf.apply()
	if r := kf.run("plan", "-detailed-exitcode"); r.code != 0 || strings.Contains(r.out, "the cluster would change") {
		t.Fatalf("plan after apply:\n%s", r)
	}

	cs[0].env["NETWORK"] = "mainnet"
	cs[0].env["FOO"] = "bar"
	cs[0].extra = "  replicas = 2\n"
	kf.writeK(cs)
	r := kf.run("plan", "-detailed-exitcode")
	if r.code != 2 {
		t.Fatalf("plan with changes:\n%s", r)
	}
	t.Logf("plan:\n%s", r.out)
	var line string
	for _, l := range strings.Split(r.out, "\n") {
		if strings.Contains(l, "# the cluster would change: ") {
			line = l
		}
	}
	for _, want := range []string{"spec.replicas", "spec.template.spec.containers[0].env[FOO]", "spec.template.spec.containers[0].env[NETWORK]"} {
		if !strings.Contains(line, want) {
			t.Errorf("the plan's cluster line lacks %s:\n%s", want, r.out)
		}
	}
	for _, noise := range []string{"managedFields", "resourceVersion", "generation", "status", "spec-hash", "FLOWCTL_COMPONENT_TOKEN"} {
		if strings.Contains(line, noise) {
			t.Errorf("the plan's cluster line names %s:\n%s", noise, line)
		}
	}
	js := kf.must(0, "plan", "-json").out
	if !strings.Contains(js, `"cluster_changes": [`) || !strings.Contains(js, `"spec.replicas"`) {
		t.Errorf("plan -json lacks cluster_changes:\n%s", js)
	}
	kf.apply()
	if r := kf.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan after the second apply:\n%s", r)
	}
	kf.must(0, "destroy", "-auto-approve")
}
