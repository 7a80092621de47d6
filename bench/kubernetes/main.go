// Command kubernetes measures flowctl's kubernetes executor against kubectl
// on the project's test cluster (scripts/k8s: a real API server,
// controllers and scheduler, kwok playing the nodes), with N components of
// one replica each:
//
//   - apply: `flowctl apply -auto-approve` of a pipeline of N Kubernetes
//     sources, readiness gated (apply waits for each rollout), against
//     `kubectl apply -f` of the equivalent manifests (per component a
//     Secret, a Deployment and a Service, as flowctl makes) followed by
//     `kubectl rollout status` of each Deployment;
//   - no-change plan: `flowctl plan` of the applied pipeline against
//     `kubectl diff -f` of the same manifests;
//   - destroy: `flowctl destroy -auto-approve` against `kubectl delete -f
//     --wait`.
//
// Each round runs both, in an order that alternates from round to round,
// each in a namespace of its own; the report gives the medians and
// flowctl's ratio to kubectl.
//
//	go run ./bench/kubernetes -n 50 -rounds 5
//
// It starts its own cluster (scripts/k8s/up.sh) unless -kubeconfig names
// one, and stops it at the end.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

type bench struct {
	n, rounds  int
	dir        string
	flowctl    string
	kubectl    string
	kubeconfig string
}

// times are one method's measurements.
type times struct{ apply, plan, destroy []time.Duration }

func main() {
	var b bench
	flag.IntVar(&b.n, "n", 50, "components")
	flag.IntVar(&b.rounds, "rounds", 5, "rounds; each runs flowctl and kubectl once")
	flag.StringVar(&b.kubeconfig, "kubeconfig", "", "a running cluster's kubeconfig (default: start the test cluster)")
	flag.Parse()
	if err := run(&b); err != nil {
		fmt.Fprintln(os.Stderr, "kubernetes bench:", err)
		os.Exit(1)
	}
}

func run(b *bench) error {
	dir, err := os.MkdirTemp("", "flowctl-k8s-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.dir = dir
	b.flowctl = filepath.Join(dir, "flowctl")
	if out, err := exec.Command("go", "build", "-o", b.flowctl, "./cmd/flowctl").CombinedOutput(); err != nil {
		return fmt.Errorf("build flowctl: %v\n%s", err, out)
	}
	cache := os.Getenv("FLOWCTL_K8S_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "flowctl-k8s")
	}
	b.kubectl = filepath.Join(cache, "bin", "kubectl")
	if b.kubeconfig == "" {
		cluster := filepath.Join(dir, "cluster")
		up := exec.Command("bash", "scripts/k8s/up.sh", cluster)
		up.Stderr = os.Stderr
		out, err := up.Output()
		if err != nil {
			return fmt.Errorf("up.sh: %v", err)
		}
		defer exec.Command("bash", "scripts/k8s/down.sh", cluster).Run()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		b.kubeconfig = strings.TrimPrefix(lines[len(lines)-1], "KUBECONFIG=")
	}
	var fl, kc times
	for r := 0; r < b.rounds; r++ {
		order := []func() error{func() error { return b.flowctlRound(r, &fl) }, func() error { return b.kubectlRound(r, &kc) }}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, f := range order {
			if err := f(); err != nil {
				return fmt.Errorf("round %d: %w", r, err)
			}
		}
		fmt.Fprintf(os.Stderr, "round %d: flowctl %v/%v/%v, kubectl %v/%v/%v\n", r,
			last(fl.apply), last(fl.plan), last(fl.destroy), last(kc.apply), last(kc.plan), last(kc.destroy))
	}
	fmt.Printf("%d components, %d rounds, medians:\n\n", b.n, b.rounds)
	fmt.Printf("| step | flowctl | kubectl | flowctl / kubectl |\n|---|---:|---:|---:|\n")
	for _, row := range []struct {
		name   string
		f, k   []time.Duration
		target string
	}{
		{"apply (readiness gated) vs apply -f + rollout status each", fl.apply, kc.apply, "≤ 1.0"},
		{"no-change plan vs diff -f", fl.plan, kc.plan, "≤ 0.5"},
		{"destroy vs delete -f --wait", fl.destroy, kc.destroy, "≤ 1.0"},
	} {
		mf, mk := median(row.f), median(row.k)
		fmt.Printf("| %s | %v | %v | %.2f (target %s) |\n", row.name, mf.Round(time.Millisecond), mk.Round(time.Millisecond), float64(mf)/float64(mk), row.target)
	}
	return nil
}

func last(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)-1].Round(time.Millisecond)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// timed runs a command and returns how long it took.
func timed(dir string, okCodes []int, name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if ee, ok := err.(*exec.ExitError); ok {
		for _, c := range okCodes {
			if ee.ExitCode() == c {
				return d, nil
			}
		}
	}
	if err != nil {
		return d, fmt.Errorf("%s %v: %v\n%s", filepath.Base(name), args, err, out.String())
	}
	return d, nil
}

// namespace creates a fresh namespace for one method of one round.
func (b *bench) namespace(name string) error {
	if _, err := timed(b.dir, nil, b.kubectl, "--kubeconfig", b.kubeconfig, "create", "namespace", name); err != nil {
		return err
	}
	// Wait for its default ServiceAccount, as pods need it.
	for i := 0; i < 600; i++ {
		if _, err := timed(b.dir, nil, b.kubectl, "--kubeconfig", b.kubeconfig, "-n", name, "get", "serviceaccount", "default"); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("namespace %s: no default ServiceAccount", name)
}

func (b *bench) flowctlRound(r int, t *times) error {
	name := fmt.Sprintf("bench-f-%d-%d", os.Getpid(), r)
	if err := b.namespace(name); err != nil {
		return err
	}
	dir := filepath.Join(b.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var p strings.Builder
	fmt.Fprintf(&p, "pipeline %q {\n  executor = \"kubernetes\"\n  kubernetes {\n    kubeconfig = %q\n    namespace = %q\n  }\n}\n", name, b.kubeconfig, name)
	for i := 0; i < b.n; i++ {
		fmt.Fprintf(&p, "\nsource \"c%d\" {\n  image = \"flowctl.bench/tc:1\"\n  env = { INDEX = \"%d\" }\n  restart {\n    policy = \"always\"\n  }\n}\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(p.String()), 0o644); err != nil {
		return err
	}
	d, err := timed(dir, nil, b.flowctl, "apply", "-auto-approve")
	if err != nil {
		return err
	}
	t.apply = append(t.apply, d)
	// -detailed-exitcode: 0 means no changes, which is what is measured.
	if d, err = timed(dir, nil, b.flowctl, "plan", "-detailed-exitcode"); err != nil {
		return err
	}
	t.plan = append(t.plan, d)
	if d, err = timed(dir, nil, b.flowctl, "destroy", "-auto-approve"); err != nil {
		return err
	}
	t.destroy = append(t.destroy, d)
	_, err = timed(dir, nil, b.kubectl, "--kubeconfig", b.kubeconfig, "delete", "namespace", name, "--wait=false")
	return err
}

// manifests are what flowctl makes for the same pipeline: per component a
// Secret (its token), a Deployment of one replica and a Service.
func (b *bench) manifests(ns string) string {
	var m strings.Builder
	for i := 0; i < b.n; i++ {
		name := fmt.Sprintf("%s-c%d", ns, i)
		labels := fmt.Sprintf("{app.kubernetes.io/managed-by: bench, flowctl.io/pipeline: %s, flowctl.io/component: source.c%d}", ns, i)
		fmt.Fprintf(&m, `apiVersion: v1
kind: Secret
metadata: {name: %[1]s-flowctl, namespace: %[2]s, labels: %[3]s}
stringData: {FLOWCTL_COMPONENT_TOKEN: not-a-real-token}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: %[2]s, labels: %[3]s}
spec:
  replicas: 1
  selector: {matchLabels: {flowctl.io/pipeline: %[2]s, flowctl.io/component: source.c%[4]d}}
  template:
    metadata: {labels: %[3]s}
    spec:
      containers:
      - name: app
        image: flowctl.bench/tc:1
        env:
        - {name: INDEX, value: "%[4]d"}
        - name: FLOWCTL_COMPONENT_TOKEN
          valueFrom: {secretKeyRef: {name: %[1]s-flowctl, key: FLOWCTL_COMPONENT_TOKEN}}
        ports:
        - {name: data, containerPort: %[5]d}
        - {name: health, containerPort: %[6]d}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s, labels: %[3]s}
spec:
  selector: {flowctl.io/pipeline: %[2]s, flowctl.io/component: source.c%[4]d}
  ports:
  - {name: data, port: %[5]d}
  - {name: health, port: %[6]d}
---
`, name, ns, labels, i, 20000+2*i, 20001+2*i)
	}
	return m.String()
}

func (b *bench) kubectlRound(r int, t *times) error {
	ns := fmt.Sprintf("bench-k-%d-%d", os.Getpid(), r)
	if err := b.namespace(ns); err != nil {
		return err
	}
	file := filepath.Join(b.dir, ns+".yaml")
	if err := os.WriteFile(file, []byte(b.manifests(ns)), 0o644); err != nil {
		return err
	}
	kc := []string{"--kubeconfig", b.kubeconfig}
	start := time.Now()
	if _, err := timed(b.dir, nil, b.kubectl, append(kc, "apply", "-f", file)...); err != nil {
		return err
	}
	for i := 0; i < b.n; i++ {
		if _, err := timed(b.dir, nil, b.kubectl, append(kc, "-n", ns, "rollout", "status", fmt.Sprintf("deployment/%s-c%d", ns, i))...); err != nil {
			return err
		}
	}
	t.apply = append(t.apply, time.Since(start))
	// kubectl diff exits 0 when nothing differs, 1 when something does.
	d, err := timed(b.dir, nil, b.kubectl, append(kc, "diff", "-f", file)...)
	if err != nil {
		return err
	}
	t.plan = append(t.plan, d)
	if d, err = timed(b.dir, nil, b.kubectl, append(kc, "delete", "-f", file, "--wait")...); err != nil {
		return err
	}
	t.destroy = append(t.destroy, d)
	_, err = timed(b.dir, nil, b.kubectl, append(kc, "delete", "namespace", ns, "--wait=false")...)
	return err
}
