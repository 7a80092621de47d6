package kubernetes

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/providers"
)

// TestCheckPlanNamesTheFieldsTheClusterWouldChange: an unchanged component
// changes nothing; a changed one names the paths the API server's dry run
// changes, the Secret's by path only, and the dry run changes nothing.
func TestCheckPlanNamesTheFieldsTheClusterWouldChange(t *testing.T) {
	cl, p, ns := onCluster(t)
	ctx := context.Background()
	pl := &config.Pipeline{Name: "ttp"}
	spec := testSpec("always")
	h, err := p.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background(), h, time.Second) })
	waitSettled(t, p, h)

	same := *spec.Component
	changes, err := p.CheckPlan(ctx, pl, []*config.Component{&same})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 {
		t.Fatalf("an unchanged component: the cluster would change %v", changes)
	}

	before, err := cl.Client.AppsV1().Deployments(ns).Get(ctx, ObjectName("ttp", "ledger"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	changed := *spec.Component
	changed.Replicas = 3
	changed.Env = map[string]config.EnvValue{"NETWORK": {Value: "mainnet"}, "FOO": {Value: "bar"},
		"DB_PASSWORD": {Value: "s3cret-new", Sensitive: true}}
	changes, err = p.CheckPlan(ctx, pl, []*config.Component{&changed})
	if err != nil {
		t.Fatal(err)
	}
	got := changes["source.ledger"]
	for _, want := range []string{"spec.replicas", "spec.template.spec.containers[0].env[NETWORK]",
		"spec.template.spec.containers[0].env[FOO]", "metadata.annotations[flowctl.io/replicas]", "Secret data[DB_PASSWORD]"} {
		if !slices.Contains(got, want) {
			t.Errorf("the cluster would change %v: %s is missing", got, want)
		}
	}
	for _, path := range got {
		for _, noise := range []string{"managedFields", "resourceVersion", "generation", "status", "Timestamp",
			"spec-hash", "instance", "lineage", "FLOWCTL_", "PORT"} {
			if strings.Contains(path, noise) {
				t.Errorf("the cluster would change %v: %s is noise", got, path)
			}
		}
	}
	b, _ := json.Marshal(changes)
	for _, secret := range []string{"s3cret-new", "hunter2", "tok.en.value"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("a secret value is in the changes: %s", b)
		}
	}
	after, err := cl.Client.AppsV1().Deployments(ns).Get(ctx, ObjectName("ttp", "ledger"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation || *after.Spec.Replicas != 2 {
		t.Errorf("the dry run changed the Deployment: generation %d -> %d, replicas %d", before.Generation, after.Generation, *after.Spec.Replicas)
	}

	// The plan prints them under the change.
	var out strings.Builder
	plan.Render(&out, &plan.Plan{Pipeline: "ttp", Changes: []*plan.Change{{Address: "source.ledger", Action: plan.Update,
		Reason: plan.ReasonSpecChanged, Provider: Name, ClusterChanges: got}}}, plan.RenderOptions{})
	if !strings.Contains(out.String(), "# the cluster would change: ") || !strings.Contains(out.String(), "spec.replicas") {
		t.Errorf("rendered plan:\n%s", out.String())
	}
}

// TestUnschedulablePodNamesTheSchedulersEvent: a pod no node can hold is
// not running, and the reason carries the scheduler's FailedScheduling
// event as well as the pod's status.
func TestUnschedulablePodNamesTheSchedulersEvent(t *testing.T) {
	_, p, _ := onCluster(t)
	ctx := context.Background()
	spec := testSpec("always")
	spec.Component.Replicas = 1
	spec.Component.Resources = config.Resources{CPURequest: 10_000_000} // 10 000 CPUs
	h, err := p.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background(), h, time.Second) })
	// The scheduler records its event a moment after it marks the pod. No
	// wall-clock bound that a loaded machine could break: an event that
	// never comes hangs until go test's timeout.
	var o providers.Observed
	deadline := time.Now().Add(time.Hour)
	for {
		if o, err = p.Observe(ctx, h); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(o.Detail, "events: FailedScheduling: ") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o.Running || !strings.Contains(o.Detail, "unschedulable") || !strings.Contains(o.Detail, "events: FailedScheduling: 0/") {
		t.Errorf("observed %+v", o)
	}
}

// TestCheckPlanOfAChangedJobIsNotRefused: a Job's template is immutable,
// and apply replaces a Job rather than updating it; the dry run of its
// change must not be refused for it, and lists no paths.
func TestCheckPlanOfAChangedJobIsNotRefused(t *testing.T) {
	_, p, _ := onCluster(t)
	ctx := context.Background()
	spec := testSpec("never")
	h, err := p.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background(), h, time.Second) })
	changed := *spec.Component
	changed.Env = map[string]config.EnvValue{"NETWORK": {Value: "mainnet"}}
	changes, err := p.CheckPlan(ctx, &config.Pipeline{Name: "ttp"}, []*config.Component{&changed})
	if err != nil {
		t.Fatalf("a changed Job: %v", err)
	}
	if len(changes) != 0 {
		t.Errorf("a Job is replaced, yet the cluster would change %v", changes)
	}
}
