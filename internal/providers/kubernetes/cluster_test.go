package kubernetes

// Tests against a real API server: the project's test cluster
// (scripts/k8s, through k8stest), where kwok plays the nodes.

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/testutil/k8stest"
	"github.com/flowctl/flowctl/pkg/contract"
)

func TestMain(m *testing.M) { os.Exit(k8stest.Main(m)) }

// onCluster is a provider on the shared cluster, in a namespace of the
// test's own.
func onCluster(t *testing.T) (*k8stest.Cluster, *Provider, string) {
	t.Helper()
	cl := k8stest.Shared(t)
	ns := cl.Namespace(t)
	return cl, New(Options{Settings: &config.Kubernetes{Kubeconfig: cl.Kubeconfig, Namespace: ns}}), ns
}

// waitSettled polls Observe until the component is ready or has stopped
// running, and returns what it saw last.
func waitSettled(t *testing.T, p *Provider, h providers.Handle) providers.Observed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		o, err := p.Observe(ctx, h)
		if err != nil {
			t.Fatalf("observe: %v", err)
		}
		if !o.Running || o.Health == providers.HealthHealthy {
			return o
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not settled: %+v", o)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func kubectl(t *testing.T, cl *k8stest.Cluster, args ...string) string {
	t.Helper()
	cmd := exec.Command(cl.Kubectl, append([]string{"--kubeconfig", cl.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestStartRollsOutAndStopLeavesNothing(t *testing.T) {
	cl, p, ns := onCluster(t)
	ctx := context.Background()
	spec := testSpec("always")
	h, err := p.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	o := waitSettled(t, p, h)
	if !o.Running || o.Health != providers.HealthHealthy || o.SpecHash != "hash-1" || o.Lineage != "lin-1" || o.Address != "source.ledger" {
		t.Fatalf("observed %+v", o)
	}
	if !strings.Contains(o.Detail, "ready 2/2") || !strings.Contains(o.Detail, "node kwok-node-0") {
		t.Errorf("detail %q lacks the replicas or the node", o.Detail)
	}
	if o.Ports[contract.EnvPort] != 50051 {
		t.Errorf("ports read back: %v", o.Ports)
	}
	d, err := cl.Client.AppsV1().Deployments(ns).Get(ctx, "ttp-ledger", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	managers := map[string]bool{}
	for _, f := range d.ManagedFields {
		managers[f.Manager+"/"+string(f.Operation)] = true
	}
	if !managers["flowctl/Apply"] {
		t.Errorf("not server-side applied by flowctl: %v", managers)
	}
	// Applying the same spec again changes nothing (no new generation).
	if _, err := p.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	d2, _ := cl.Client.AppsV1().Deployments(ns).Get(ctx, "ttp-ledger", metav1.GetOptions{})
	if d2.Generation != d.Generation {
		t.Errorf("a second apply of the same instance made generation %d from %d", d2.Generation, d.Generation)
	}
	if err := p.Stop(ctx, h, time.Second); err != nil {
		t.Fatal(err)
	}
	if out := kubectl(t, cl, "-n", ns, "get", "deployments,services,secrets,pods", "-l", LabelPipeline+"=ttp", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("left after Stop:\n%s", out)
	}
	if o, err := p.Observe(ctx, h); err != nil || o.Exists {
		t.Errorf("after Stop: %+v, %v", o, err)
	}
}

func TestJobForRestartPolicyNever(t *testing.T) {
	cl, p, ns := onCluster(t)
	spec := testSpec("never")
	spec.Component.Replicas = 1
	h, err := p.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	o := waitSettled(t, p, h)
	if _, err := cl.Client.BatchV1().Jobs(ns).Get(context.Background(), "ttp-ledger", metav1.GetOptions{}); err != nil {
		t.Fatalf("no Job: %v (observed %+v)", err, o)
	}
	// kwok completes a Job's pod: the component ran to its end, code 0.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for o.Running {
		o, err = p.Observe(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
	}
	if o.ExitCode == nil || *o.ExitCode != 0 || !strings.Contains(o.Detail, "job completed") {
		t.Errorf("observed %+v", o)
	}
	if err := p.Stop(context.Background(), h, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestDriftOfEachKind(t *testing.T) {
	cl, p, ns := onCluster(t)
	ctx := context.Background()
	start := func() providers.Handle {
		h, err := p.Start(ctx, testSpec("always"))
		if err != nil {
			t.Fatal(err)
		}
		waitSettled(t, p, h)
		return h
	}
	h := start()
	kubectl(t, cl, "-n", ns, "scale", "deployment/ttp-ledger", "--replicas=5")
	if o, _ := p.Observe(ctx, h); o.SpecHash == "hash-1" || !strings.Contains(o.SpecHash, "scaled") {
		t.Errorf("scaled: spec hash %q", o.SpecHash)
	}
	// Applying again takes replicas back.
	h = start()
	if o, _ := p.Observe(ctx, h); o.SpecHash != "hash-1" {
		t.Errorf("after a new apply: spec hash %q", o.SpecHash)
	}
	kubectl(t, cl, "-n", ns, "set", "env", "deployment/ttp-ledger", "EXTRA=1")
	if o, _ := p.Observe(ctx, h); !strings.Contains(o.SpecHash, "edited-by-kubectl") {
		t.Errorf("edited: spec hash %q", o.SpecHash)
	}
	// A replacement after an edit starts from a clean object.
	if err := p.StopForReplace(ctx, h, time.Second); err != nil {
		t.Fatal(err)
	}
	h = start()
	d, _ := cl.Client.AppsV1().Deployments(ns).Get(ctx, "ttp-ledger", metav1.GetOptions{})
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "EXTRA" {
			t.Errorf("the edit survived the replacement")
		}
	}
	kubectl(t, cl, "-n", ns, "delete", "deployment/ttp-ledger", "--wait")
	if o, err := p.Observe(ctx, h); err != nil || o.Exists {
		t.Errorf("deleted: %+v, %v", o, err)
	}
	_ = p.Stop(ctx, h, time.Second)
}

func TestCheckPlanRefusesWhatTheAPIServerWould(t *testing.T) {
	cl, p, ns := onCluster(t)
	ctx := context.Background()
	pl := &config.Pipeline{Name: "ttp"}
	bad := testSpec("always").Component
	bad.ID = "ledger_v2" // a flowctl id, not a Kubernetes name
	_, err := p.CheckPlan(ctx, pl, []*config.Component{bad})
	if err == nil || !strings.Contains(err.Error(), "ttp-ledger_v2") || !strings.Contains(err.Error(), "source.ledger_v2") {
		t.Errorf("a bad name: %v", err)
	}
	good := testSpec("always").Component
	if _, err := p.CheckPlan(ctx, pl, []*config.Component{good}); err != nil {
		t.Fatalf("a good component: %v", err)
	}
	if l, _ := cl.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); len(l.Items) != 0 {
		t.Fatalf("a dry run created %d deployments", len(l.Items))
	}
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-more"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/deployments.apps": resource.MustParse("0")}}}
	if _, err := cl.Client.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The quota controller fills in its status before admission enforces it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = p.CheckPlan(ctx, pl, []*config.Component{good})
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "exceeded quota") {
		t.Errorf("a quota exceeded: %v", err)
	}
}

func TestPodThatFailsIsNotRunningWithItsReason(t *testing.T) {
	_, p, _ := onCluster(t)
	spec := testSpec("always")
	spec.Env["FLOWCTL_TEST_POD_FAILS"] = "ImagePullBackOff"
	h, err := p.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	o := waitSettled(t, p, h)
	if o.Running || !strings.Contains(o.Detail, "ImagePullBackOff") {
		t.Errorf("observed %+v", o)
	}
	if err := p.Stop(context.Background(), h, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestLogsFromThePodsLogEndpoint(t *testing.T) {
	cl, p, _ := onCluster(t)
	h, err := p.Start(context.Background(), testSpec("always"))
	if err != nil {
		t.Fatal(err)
	}
	waitSettled(t, p, h)
	marker := k8stest.Name("line")
	cl.AppendPodLog(t, marker)
	rc, err := p.Logs(context.Background(), h, providers.LogOptions{Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Two replicas: the line once from each pod, as "<time> stdout <text>".
	if n := strings.Count(string(b), " stdout "+marker+"\n"); n != 2 {
		t.Errorf("want the line from both pods, got %d:\n%s", n, b)
	}
	// Follow sees a line appended later.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err = p.Logs(ctx, h, providers.LogOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	later := k8stest.Name("later")
	cl.AppendPodLog(t, later)
	buf := make([]byte, 64<<10)
	var got string
	for !strings.Contains(got, later) {
		n, err := rc.Read(buf)
		if err != nil {
			t.Fatalf("follow: %v after %q", err, got)
		}
		got += string(buf[:n])
	}
	_ = p.Stop(context.Background(), h, time.Second)
}

func TestOwnedNamespaceIsCreatedAndRemovedWhenEmpty(t *testing.T) {
	cl := k8stest.Shared(t)
	pipeline := k8stest.Name("pl")
	p := New(Options{Settings: &config.Kubernetes{Kubeconfig: cl.Kubeconfig}})
	spec := testSpec("always")
	spec.Pipeline = pipeline
	ctx := context.Background()
	h, err := p.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	nsObj, err := cl.Client.CoreV1().Namespaces().Get(ctx, pipeline, metav1.GetOptions{})
	if err != nil || nsObj.Labels[LabelNamespaceOwner] != pipeline {
		t.Fatalf("namespace: %v %v", nsObj, err)
	}
	if addr := p.ComponentAddress(pipeline, spec.Component, 50051); addr != pipeline+"-ledger."+pipeline+".svc:50051" {
		t.Errorf("address %s", addr)
	}
	waitSettled(t, p, h)
	if err := p.Stop(ctx, h, time.Second); err != nil {
		t.Fatal(err)
	}
	nsObj, err = cl.Client.CoreV1().Namespaces().Get(ctx, pipeline, metav1.GetOptions{})
	if err == nil && nsObj.DeletionTimestamp == nil {
		t.Errorf("the namespace flowctl made was not removed: %+v", nsObj.Status)
	} else if err != nil && !apierrors.IsNotFound(err) {
		t.Error(err)
	}
}

func TestListFindsOnlyItsPipeline(t *testing.T) {
	_, p, _ := onCluster(t)
	ctx := context.Background()
	a, b := testSpec("always"), testSpec("always")
	b.Pipeline = "other"
	ha, err := p.Start(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := p.Start(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	la, err := p.List(ctx, "ttp")
	if err != nil || len(la) != 1 || la[0].Pipeline != "ttp" {
		t.Fatalf("list ttp: %+v %v", la, err)
	}
	if err := p.Stop(ctx, ha, time.Second); err != nil {
		t.Fatal(err)
	}
	if o, _ := p.Observe(ctx, hb); !o.Exists {
		t.Errorf("stopping ttp's component touched other's")
	}
	_ = p.Stop(ctx, hb, time.Second)
}

func TestUnreachableAPIServerIsNamed(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	// 127.0.0.1:1: nothing listens there.
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := New(Options{Settings: &config.Kubernetes{Kubeconfig: kc, Namespace: "x"}})
	err := p.Preflight(context.Background(), []*config.Component{testSpec("always").Component})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Kubernetes API server at https://127.0.0.1:1 (from kubernetes.kubeconfig)") {
		t.Errorf("preflight: %v", err)
	}
	if _, err := p.Start(context.Background(), testSpec("always")); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("start: %v", err)
	}
}

func TestForbiddenNamesTheVerbAndResource(t *testing.T) {
	cl, _, ns := onCluster(t)
	// The same admin credentials, impersonating a user RBAC grants nothing.
	b, err := os.ReadFile(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	nobody := strings.Replace(string(b), "    client-key-data:", "    as: flowctl-nobody\n    client-key-data:", 1)
	if err := os.WriteFile(kc, []byte(nobody), 0o600); err != nil {
		t.Fatal(err)
	}
	p := New(Options{Settings: &config.Kubernetes{Kubeconfig: kc, Namespace: ns}})
	_, err = p.Start(context.Background(), testSpec("always"))
	if err == nil || !strings.Contains(err.Error(), "forbidden by Kubernetes: get namespaces") {
		t.Errorf("start as nobody: %v", err)
	}
}

func TestTerminatingNamespaceIsNamedAndNothingIsApplied(t *testing.T) {
	cl := k8stest.Shared(t)
	ctx := context.Background()
	ns := k8stest.Name("term")
	// A finalizer of the test's own holds the namespace in Terminating.
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Finalizers: []string{"flowctl.test/hold"}}}
	if _, err := cl.Client.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if got, err := cl.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			got.Finalizers = nil
			_, _ = cl.Client.CoreV1().Namespaces().Update(ctx, got, metav1.UpdateOptions{})
		}
	})
	if err := cl.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p := New(Options{Settings: &config.Kubernetes{Kubeconfig: cl.Kubeconfig, Namespace: ns}})
	_, err := p.Start(ctx, testSpec("always"))
	if err == nil || !strings.Contains(err.Error(), "namespace "+ns+" is terminating") {
		t.Fatalf("start in a terminating namespace: %v", err)
	}
	if l, _ := cl.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); len(l.Items) != 0 {
		t.Errorf("applied %d deployments", len(l.Items))
	}
}
