package e2e

// End-to-end tests of the kubernetes executor: the flowctl binary against
// a real API server, controllers and scheduler (the project's test
// cluster, scripts/k8s, through k8stest), with kwok playing the nodes:
// pods go Running and Ready, nothing runs in them.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowctl/flowctl/internal/providers/kubernetes"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
	"github.com/flowctl/flowctl/internal/testutil/k8stest"
)

// kfix is a fixture whose pipeline runs (partly) on the test cluster.
type kfix struct {
	*fixture
	cl *k8stest.Cluster
	// ns is the namespace the pipeline names; "" lets flowctl make one
	// named after the pipeline.
	ns string
}

// newKFixture makes the fixture. Its cleanup, after the fixture's destroy,
// fails the test if any object of the pipeline is left.
func newKFixture(t *testing.T, ownNamespace bool) *kfix {
	t.Helper()
	cl := k8stest.Shared(t)
	kf := &kfix{cl: cl}
	if ownNamespace {
		kf.ns = cl.Namespace(t)
	}
	t.Cleanup(func() {
		if kf.fixture == nil {
			return
		}
		if left := kf.objects(); left != "" {
			t.Errorf("cleanup: objects of pipeline %s left after destroy:\n%s", kf.name, left)
		}
	})
	kf.fixture = newFixture(t)
	return kf
}

// namespace is where the pipeline's objects are.
func (kf *kfix) namespace() string {
	if kf.ns != "" {
		return kf.ns
	}
	return kf.name
}

// kcomp is one component of a generated pipeline.
type kcomp struct {
	kind, id string
	image    string // "" is flowctl.test/tc:1
	inputs   []string
	env      map[string]string
	// executor other than kubernetes; "process" runs the test component.
	executor string
	extra    string
}

// writeK writes pipeline.hcl: executor kubernetes, the components cs.
func (kf *kfix) writeK(cs []kcomp) {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %q {\n  executor = \"kubernetes\"\n  kubernetes {\n    kubeconfig = %q\n", kf.name, kf.cl.Kubeconfig)
	if kf.ns != "" {
		fmt.Fprintf(&b, "    namespace = %q\n", kf.ns)
	}
	b.WriteString("  }\n}\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "\n%s %q {\n", c.kind, c.id)
		switch c.executor {
		case "process":
			fmt.Fprintf(&b, "  executor = \"process\"\n  command = [%q]\n  health {\n    http = \"/health\"\n  }\n", kf.tc)
		case "docker":
			fmt.Fprintf(&b, "  executor = \"docker\"\n  image = %q\n  stop_timeout = \"2s\"\n  health {\n    http = \"/health\"\n    interval = \"1s\"\n  }\n", c.image)
		case "":
			img := c.image
			if img == "" {
				img = "flowctl.test/tc:1"
			}
			fmt.Fprintf(&b, "  image = %q\n  stop_timeout = \"1s\"\n", img)
			// Restart always: a Deployment. (The default, on-failure, is a
			// Job, whose pods kwok completes at once; the provider's tests
			// cover Jobs.)
			b.WriteString("  restart {\n    policy = \"always\"\n  }\n")
		}
		if len(c.inputs) > 0 {
			fmt.Fprintf(&b, "  inputs = [%s]\n", strings.Join(c.inputs, ", "))
		}
		writeEnvBlock(&b, c.env)
		b.WriteString(c.extra)
		b.WriteString("}\n")
	}
	kf.write("pipeline.hcl", b.String())
}

// kubectl runs the test cluster's kubectl.
func (kf *kfix) kubectl(args ...string) string {
	kf.t.Helper()
	out, err := exec.Command(kf.cl.Kubectl, append([]string{"--kubeconfig", kf.cl.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		kf.t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// objects lists the pipeline's objects in its namespace, one per line.
func (kf *kfix) objects() string {
	out, _ := exec.Command(kf.cl.Kubectl, "--kubeconfig", kf.cl.Kubeconfig, "-n", kf.namespace(), "get",
		"deployments,jobs,services,secrets,pods", "-l", kubernetes.LabelPipeline+"="+kf.name, "-o", "name").CombinedOutput()
	s := strings.TrimSpace(string(out))
	if strings.Contains(s, "No resources found") {
		return ""
	}
	return s
}

// deployment reads the Deployment of component id.
func (kf *kfix) deploymentGeneration(id string) (int64, string) {
	kf.t.Helper()
	d, err := kf.cl.Client.AppsV1().Deployments(kf.namespace()).Get(context.Background(), kubernetes.ObjectName(kf.name, id), metav1.GetOptions{})
	if err != nil {
		kf.t.Fatalf("deployment of %s: %v", id, err)
	}
	var env []string
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env = append(env, e.Name+"="+e.Value)
	}
	return d.Generation, d.Spec.Template.Spec.Containers[0].Image + " " + strings.Join(env, " ")
}

func TestKubernetesLifecyclePlanApplyNoOpEnvChangeImageChangeDestroy(t *testing.T) {
	kf := newKFixture(t, false)
	cs := []kcomp{
		{kind: "source", id: "ledger", env: map[string]string{"NETWORK": "testnet"}},
		{kind: "sink", id: "store", inputs: []string{"source.ledger"}, env: map[string]string{"UPSTREAM": "${source.ledger.address}"}},
	}
	kf.writeK(cs)
	if got := kf.plan().actions(); strings.Join(got, ";") != "create sink.store (not_in_state);create source.ledger (not_in_state)" {
		t.Fatalf("first plan: %v", got)
	}
	kf.apply()
	if r := kf.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan after apply is not empty\n%s", r)
	}
	gen, spec := kf.deploymentGeneration("store")
	want := "UPSTREAM=" + kubernetes.ObjectName(kf.name, "ledger") + "." + kf.name + ".svc:"
	if !strings.Contains(spec, want) {
		t.Errorf("sink.store's env lacks %s: %s", want, spec)
	}
	// The token is in the Secret, never in the Deployment, the plan or state.
	sec, err := kf.cl.Client.CoreV1().Secrets(kf.namespace()).Get(context.Background(), kubernetes.ObjectName(kf.name, "store")+"-flowctl", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := string(sec.Data["FLOWCTL_COMPONENT_TOKEN"])
	if len(token) < 20 {
		t.Fatalf("no token in the Secret: %q", token)
	}
	stateBytes, _ := os.ReadFile(kf.statePath())
	if strings.Contains(spec, token) || strings.Contains(string(stateBytes), token) || strings.Contains(kf.must(0, "plan", "-json").out, token) {
		t.Errorf("the token is in the Deployment, the state or the plan")
	}

	// An env change rolls the Deployment.
	cs[1].env["LEVEL"] = "debug"
	kf.writeK(cs)
	kf.apply()
	gen2, spec2 := kf.deploymentGeneration("store")
	if gen2 <= gen || !strings.Contains(spec2, "LEVEL=debug") {
		t.Errorf("env change: generation %d -> %d, %s", gen, gen2, spec2)
	}
	// An image change too.
	cs[1].image = "flowctl.test/tc:2"
	kf.writeK(cs)
	kf.apply()
	if gen3, spec3 := kf.deploymentGeneration("store"); gen3 <= gen2 || !strings.HasPrefix(spec3, "flowctl.test/tc:2 ") {
		t.Errorf("image change: generation %d -> %d, %s", gen2, gen3, spec3)
	}
	if r := kf.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan after the changes is not empty\n%s", r)
	}
	if r := kf.must(0, "status"); !strings.Contains(r.out, "sink.store") || !strings.Contains(r.out, "deployment: ready 1/1, restarts 0, node kwok-node-0") {
		t.Errorf("status:\n%s", r)
	}
	kf.must(0, "destroy", "-auto-approve")
	if left := kf.objects(); left != "" {
		t.Fatalf("left after destroy:\n%s", left)
	}
	ns, err := kf.cl.Client.CoreV1().Namespaces().Get(context.Background(), kf.name, metav1.GetOptions{})
	if err == nil && ns.DeletionTimestamp == nil {
		t.Errorf("the namespace flowctl made for the pipeline was not removed")
	}
}

func TestKubernetesProcessDockerAndKubernetesInOneDAG(t *testing.T) {
	cli := dockertest.Engine(t)
	img := dockertest.TestImage(t, cli, dockertest.ImageOptions{})
	kf := newKFixture(t, true)
	t.Cleanup(func() {
		if left := dockertest.RemovePipeline(cli, kf.name); len(left) > 0 {
			t.Errorf("cleanup: the destroy left %v", left)
		}
	})
	cs := []kcomp{
		{kind: "source", id: "local", executor: "process"},
		{kind: "processor", id: "box", executor: "docker", image: img, inputs: []string{"source.local"}},
		{kind: "processor", id: "cluster", inputs: []string{"processor.box"}, env: map[string]string{"UPSTREAM": "${processor.box.address}"}},
		{kind: "sink", id: "after", executor: "process", inputs: []string{"processor.cluster"}, env: map[string]string{"UPSTREAM": "${processor.cluster.address}"}},
	}
	kf.writeK(cs)
	r := kf.apply()
	order := []string{"source.local: Creation complete", "processor.box: Creation complete", "processor.cluster: Creating...", "processor.cluster: Creation complete", "sink.after: Creating..."}
	last := -1
	for _, s := range order {
		i := strings.Index(r.out, s)
		if i < last {
			t.Fatalf("%q out of dependency order\n%s", s, r)
		}
		last = i
	}
	recs := kf.records()
	if recs["processor.cluster"].Provider != "kubernetes" || recs["source.local"].Provider != "process" || recs["processor.box"].Provider != "docker" {
		t.Errorf("providers: %s, %s, %s", recs["processor.cluster"].Provider, recs["source.local"].Provider, recs["processor.box"].Provider)
	}
	if _, spec := kf.deploymentGeneration("cluster"); !strings.Contains(spec, "UPSTREAM="+kf.name+"-box:") {
		t.Errorf("processor.cluster's env lacks the container's address: %s", spec)
	}
	if r := kf.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan after apply is not empty\n%s", r)
	}
	kf.must(0, "destroy", "-auto-approve")
	kf.assertNoProcesses()
}

func TestKubernetesDriftIsPlannedAndRepaired(t *testing.T) {
	kf := newKFixture(t, true)
	cs := []kcomp{{kind: "source", id: "a"}, {kind: "source", id: "b"}, {kind: "source", id: "c"}}
	kf.writeK(cs)
	kf.apply()
	ns := kf.namespace()
	kf.kubectl("-n", ns, "scale", "deployment/"+kubernetes.ObjectName(kf.name, "a"), "--replicas=3")
	kf.kubectl("-n", ns, "set", "env", "deployment/"+kubernetes.ObjectName(kf.name, "b"), "SNEAKY=1")
	kf.kubectl("-n", ns, "delete", "deployment/"+kubernetes.ObjectName(kf.name, "c"), "--wait")
	got := strings.Join(kf.plan().actions(), ";")
	want := "create source.c (deleted_outside);replace source.a (changed_outside);replace source.b (changed_outside)"
	if got != want {
		t.Fatalf("plan after drift:\n got %s\nwant %s", got, want)
	}
	kf.apply()
	if r := kf.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan after repair is not empty\n%s", r)
	}
	if _, spec := kf.deploymentGeneration("b"); strings.Contains(spec, "SNEAKY") {
		t.Errorf("the edit survived the repair: %s", spec)
	}
	d, _ := kf.cl.Client.AppsV1().Deployments(ns).Get(context.Background(), kubernetes.ObjectName(kf.name, "a"), metav1.GetOptions{})
	if *d.Spec.Replicas != 1 {
		t.Errorf("replicas after repair: %d", *d.Spec.Replicas)
	}
	// A component taken out of the pipeline is deleted, and only it.
	cs = cs[:2]
	kf.writeK(cs)
	if got := strings.Join(kf.plan().actions(), ";"); got != "delete source.c (not_in_config)" {
		t.Errorf("plan without source.c: %s", got)
	}
	kf.apply()
	if got := strings.Count(kf.objects(), "deployment.apps/"); got != 2 {
		t.Errorf("%d deployments left, want 2:\n%s", got, kf.objects())
	}
	kf.must(0, "destroy", "-auto-approve")
}

func TestKubernetesPlanFailsWhereTheAPIServerWouldRefuse(t *testing.T) {
	kf := newKFixture(t, true)
	kf.writeK([]kcomp{{kind: "source", id: "ledger_v2"}})
	r := kf.must(1, "plan")
	if !strings.Contains(r.err, "source.ledger_v2") || !strings.Contains(r.err, kubernetes.ObjectName(kf.name, "ledger_v2")) {
		t.Errorf("plan of a bad name:\n%s", r)
	}
	if len(kf.records()) != 0 {
		t.Errorf("a refused plan wrote state")
	}
	// A quota that allows no Deployment.
	kf.kubectl("-n", kf.ns, "create", "quota", "none", "--hard=count/deployments.apps=0")
	kf.writeK([]kcomp{{kind: "source", id: "ledger"}})
	waitFor(t, 30*time.Second, "the quota to be enforced", func() bool {
		r = kf.run("plan")
		return r.code == 1
	})
	if !strings.Contains(r.err, "exceeded quota") {
		t.Errorf("plan over quota:\n%s", r)
	}
	if r := kf.run("apply", "-auto-approve"); r.code != 1 || kf.objects() != "" {
		t.Errorf("apply over quota:\n%s\nobjects: %s", r, kf.objects())
	}
}

func TestKubernetesFailingPodFailsItAndItsDependentsOnly(t *testing.T) {
	kf := newKFixture(t, true)
	cs := []kcomp{
		{kind: "source", id: "bad", env: map[string]string{"FLOWCTL_TEST_POD_FAILS": "ImagePullBackOff"}},
		{kind: "sink", id: "after", inputs: []string{"source.bad"}},
		{kind: "source", id: "good"},
	}
	kf.writeK(cs)
	r := kf.run("apply", "-auto-approve")
	if r.code != 1 || !strings.Contains(r.out+r.err, "ImagePullBackOff") {
		t.Fatalf("apply with a failing pod:\n%s", r)
	}
	recs := kf.records()
	if recs["source.good"] == nil || recs["source.good"].Status != "running" {
		t.Errorf("source.good: %+v", recs["source.good"])
	}
	if recs["sink.after"] != nil {
		t.Errorf("sink.after was started after its input failed: %+v", recs["sink.after"])
	}
	kf.must(0, "destroy", "-auto-approve")
}

func TestKubernetesLogsThroughThePods(t *testing.T) {
	kf := newKFixture(t, true)
	kf.writeK([]kcomp{{kind: "source", id: "a"}})
	kf.apply()
	line := k8stest.Name("hello-from-the-pod")
	kf.cl.AppendPodLog(t, line)
	r := kf.must(0, "logs", "source.a")
	if !strings.Contains(r.out, line) {
		t.Errorf("logs lack %s:\n%s", line, r)
	}
	// -f sees a line written after it started.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := kf.command(ctx, kf.dir, "logs", "-f", "source.a")
	out := &syncBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFor(t, 20*time.Second, "logs -f to print the backlog", func() bool { return strings.Contains(out.String(), line) })
	later := k8stest.Name("later")
	kf.cl.AppendPodLog(t, later)
	waitFor(t, 20*time.Second, "logs -f to print a new line", func() bool { return strings.Contains(out.String(), later) })
	kf.must(0, "destroy", "-auto-approve")
}

func TestKubernetesKilledApplyConvergesWithOneMoreApply(t *testing.T) {
	kf := newKFixture(t, true)
	cs := []kcomp{{kind: "source", id: "a"}, {kind: "processor", id: "b", inputs: []string{"source.a"}}, {kind: "sink", id: "c", inputs: []string{"processor.b"}}}
	kf.writeK(cs)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := kf.command(ctx, kf.dir, "apply", "-auto-approve")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it as soon as the first Deployment exists: mid-apply.
	waitFor(t, 30*time.Second, "the first Deployment", func() bool {
		_, err := kf.cl.Client.AppsV1().Deployments(kf.ns).Get(ctx, kubernetes.ObjectName(kf.name, "a"), metav1.GetOptions{})
		return err == nil
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	kf.apply()
	if r := kf.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan after the second apply is not empty\n%s", r)
	}
	l, err := kf.cl.Client.AppsV1().Deployments(kf.ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelPipeline + "=" + kf.name})
	if err != nil || len(l.Items) != 3 {
		t.Fatalf("deployments: %d, %v", len(l.Items), err)
	}
	kf.must(0, "destroy", "-auto-approve")
}

func TestKubernetesTwoPipelinesInOneNamespaceNeverTouchEachOther(t *testing.T) {
	one := newKFixture(t, true)
	two := newKFixture(t, false)
	two.ns = one.ns
	cs := []kcomp{{kind: "source", id: "a"}, {kind: "sink", id: "b", inputs: []string{"source.a"}}}
	one.writeK(cs)
	two.writeK(cs)
	one.apply()
	two.apply()
	for _, f := range []*kfix{one, two} {
		if r := f.run("plan", "-detailed-exitcode"); r.code != 0 {
			t.Fatalf("%s: plan is not empty beside the other pipeline\n%s", f.name, r)
		}
	}
	one.must(0, "destroy", "-auto-approve")
	if got := strings.Count(two.objects(), "deployment.apps/"); got != 2 {
		t.Errorf("after destroying the other pipeline, %s has %d deployments:\n%s", two.name, got, two.objects())
	}
	if r := two.run("plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan of the survivor is not empty\n%s", r)
	}
	two.must(0, "destroy", "-auto-approve")
}

func TestKubernetesUnreachableAPIServerChangesNothing(t *testing.T) {
	kf := newKFixture(t, true)
	kc := kf.path("dead-kubeconfig")
	kf.write("dead-kubeconfig", `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	kf.write("pipeline.hcl", fmt.Sprintf("pipeline %q {\n  executor = \"k8s\"\n  kubernetes {\n    kubeconfig = %q\n    namespace = %q\n  }\n}\nsource \"a\" {\n  image = \"x/y:1\"\n}\n", kf.name, kc, kf.ns))
	for _, args := range [][]string{{"plan"}, {"apply", "-auto-approve"}} {
		r := kf.run(args...)
		if r.code != 1 || !strings.Contains(r.err, "cannot reach the Kubernetes API server at https://127.0.0.1:1") {
			t.Errorf("%v:\n%s", args, r)
		}
	}
	if _, err := os.Stat(kf.statePath()); err == nil && len(kf.records()) != 0 {
		t.Errorf("state changed: %v", kf.records())
	}
}
