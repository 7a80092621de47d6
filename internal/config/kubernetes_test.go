package config

import (
	"strings"
	"testing"
)

const k8sHCL = `
pipeline "ttp" {
  executor = "k8s"
  kubernetes {
    kubeconfig = "kube/config"
    context    = "prod"
    namespace  = "stellar"
    advertise  = "flowctl.ops.svc:8080"
  }
}

source "ledger" {
  image = "withobsrvr/stellar-live-source:latest"
}
`

const k8sYAML = `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: ttp
spec:
  driver: kubernetes
  kubernetes:
    kubeconfig: kube/config
    context: prod
    namespace: stellar
    advertise: flowctl.ops.svc:8080
  sources:
    - id: ledger
      image: withobsrvr/stellar-live-source:latest
`

func TestKubernetesBlockAndDriverWordsLoadTheSameFromHCLAndYAML(t *testing.T) {
	h := mustLoadHCL(t, k8sHCL, LoadOptions{})
	y := ylMustLoad(t, k8sYAML)
	want := Kubernetes{Kubeconfig: "kube/config", Context: "prod", Namespace: "stellar", Advertise: "flowctl.ops.svc:8080"}
	if *h.Kubernetes != want || *y.Kubernetes != want {
		t.Fatalf("kubernetes block: hcl %+v, yaml %+v, want %+v", *h.Kubernetes, *y.Kubernetes, want)
	}
	if h.Executor != ExecutorKubernetes || h.Components[0].Executor != ExecutorKubernetes {
		t.Errorf("k8s was not read as the kubernetes executor: %q, %q", h.Executor, h.Components[0].Executor)
	}
	if string(h.CanonicalJSON()) != string(y.CanonicalJSON()) {
		t.Errorf("canonical JSON differs:\nhcl:  %s\nyaml: %s", h.CanonicalJSON(), y.CanonicalJSON())
	}
	// What is written reads back the same.
	back := ylMustLoad(t, string(WriteYAML(h)))
	if string(back.CanonicalJSON()) != string(h.CanonicalJSON()) {
		t.Errorf("written YAML reads back differently:\n%s", WriteYAML(h))
	}
	backH := mustLoadHCL(t, string(WriteHCL(y)), LoadOptions{})
	if string(backH.CanonicalJSON()) != string(y.CanonicalJSON()) {
		t.Errorf("written HCL reads back differently:\n%s", WriteHCL(y))
	}
}

func TestKubernetesBlockErrorsNameTheirLine(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{strings.Replace(k8sYAML, "namespace: stellar", "namespace: Stellar_NS", 1), `test.yaml:10,16-26: Invalid Kubernetes namespace`},
		{strings.Replace(k8sYAML, "advertise: flowctl.ops.svc:8080", "advertise: flowctl", 1), `test.yaml:11,16-23: Invalid advertise address`},
		{strings.Replace(k8sYAML, "image: withobsrvr/stellar-live-source:latest", "command: [./bin/source]", 1), `No image on Kubernetes`},
	} {
		_, diags := LoadBytes([]byte(tc.src), "test.yaml", LoadOptions{})
		if !diags.HasErrors() || !strings.Contains(diagsText(diags), tc.want) {
			t.Errorf("diagnostics = %s, want %s", diagsText(diags), tc.want)
		}
	}
}

func diagsText(diags interface{ Error() string }) string { return diags.Error() }
