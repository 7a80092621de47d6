package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func loadYAMLString(t *testing.T, src string) (*Pipeline, hcl.Diagnostics) {
	t.Helper()
	return LoadBytes([]byte(src), "pipeline.yaml", LoadOptions{Environ: []string{}})
}

const registryStyleProcessYAML = `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: ttp
  namespace: stellar
  labels: {team: data}
spec:
  description: registry-style components run as local processes
  driver: %s
  image_policy:
    require_signature: true
    public_key: cosign.pub
  sources:
    - id: ledger
      type: stellar-live-source@v1.0.0
      config:
        network_passphrase: testnet
        start-ledger: "100"
  sinks:
    - id: out
      image: 127.0.0.1:5000/team/sink:v2
      inputs: [ledger]
      image_policy:
        require_signature: false
`

func TestRegistryStyleComponentsValidateOnTheProcessExecutor(t *testing.T) {
	for _, word := range []string{"process", "local"} {
		t.Run(word, func(t *testing.T) {
			p, diags := loadYAMLString(t, strings.Replace(registryStyleProcessYAML, "%s", word, 1))
			if diags.HasErrors() {
				t.Fatalf("diagnostics: %v", diags)
			}
			src := p.Component("source.ledger")
			if src.Executor != "process" || !src.RunsImageAsProcess() {
				t.Fatalf("executor %q, runs image as process %v", src.Executor, src.RunsImageAsProcess())
			}
			if src.Image != "withobsrvr/stellar-live-source:v1.0.0" {
				t.Fatalf("image %q", src.Image)
			}
			if src.Env["NETWORK_PASSPHRASE"].Value != "testnet" || src.Env["START_LEDGER"].Value != "100" {
				t.Fatalf("config not turned into env: %+v", src.Env)
			}
			if sp := src.SignaturePolicy(); sp == nil || sp.PublicKey != "cosign.pub" {
				t.Fatalf("the pipeline's image_policy is not inherited: %+v", src.ImagePolicy)
			}
			if p.Component("sink.out").SignaturePolicy() != nil {
				t.Fatal("a component's own image_policy does not override the pipeline's")
			}
		})
	}
}

func TestDriverContainerIsDocker(t *testing.T) {
	p, diags := loadYAMLString(t, strings.Replace(registryStyleProcessYAML, "%s", "container", 1))
	if diags.HasErrors() {
		t.Fatalf("diagnostics: %v", diags)
	}
	if p.Executor != "docker" || p.Component("source.ledger").Executor != "docker" {
		t.Fatalf("driver container: executor %q", p.Executor)
	}
}

func TestImagePolicyYAMLAndHCLHashTheSame(t *testing.T) {
	y, diags := loadYAMLString(t, strings.Replace(registryStyleProcessYAML, "%s", "process", 1))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, write := range []func(*Pipeline) []byte{WriteYAML, WriteHCL} {
		src := write(y)
		name := "again.yaml"
		if bytes.Contains(src, []byte("pipeline \"")) {
			name = "again.hcl"
		}
		again, diags := LoadBytes(src, name, LoadOptions{Environ: []string{}})
		if diags.HasErrors() {
			t.Fatalf("%s: %v\n%s", name, diags, src)
		}
		if !bytes.Contains(src, []byte("image_policy")) {
			t.Fatalf("%s does not carry image_policy:\n%s", name, src)
		}
		for _, c := range y.Components {
			if again.Component(c.Address()).UnkeyedSpecHash() != c.UnkeyedSpecHash() {
				t.Fatalf("%s: %s hashes differently after writing:\n%s", name, c.Address(), src)
			}
		}
	}
}

func TestImagePolicyErrorsNameTheComponent(t *testing.T) {
	cases := map[string]struct{ src, want string }{
		"no key": {`
pipeline "p" {}
source "s" {
  image = "ghcr.io/x/y:1"
  image_policy { require_signature = true }
}`, "names no public_key"},
		"nomad": {`
pipeline "p" {}
source "s" {
  executor = "nomad"
  image = "ghcr.io/x/y:1"
  image_policy {
    require_signature = true
    public_key = "k.pub"
  }
}`, "cannot verify"},
		"image_id on process": {`
pipeline "p" {}
source "s" {
  image = "ghcr.io/x/y:1"
  image_id = "sha256:` + strings.Repeat("a", 64) + `"
}`, "pin the image by digest"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, diags := loadHCLString(t, tc.src, LoadOptions{Environ: []string{}})
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) || !strings.Contains(diags.Error(), "source.s") {
				t.Fatalf("want an error naming source.s and %q, got %v", tc.want, diags)
			}
		})
	}
}

// The keys the ecosystem's files carry load: the ones with a meaning
// silently, a multi-pipeline file's top-level pipelines with a warning.
func TestEcosystemKeysAreAcceptedAndPipelinesWarns(t *testing.T) {
	p, diags := loadYAMLString(t, `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: eco
  namespace: stellar
  labels: {team: data}
  annotations: {owner: ops}
spec:
  description: kept
  driver: local
  sources:
    - id: s
      type: stellar-live-source@v1.0.0
      health_endpoint: http://localhost:8088/health
pipelines:
  - name: another
`)
	if diags.HasErrors() || len(diags) != 1 || !strings.Contains(diags[0].Detail, `"pipelines" is ignored`) {
		t.Fatalf("want exactly one warning, about pipelines: %v", diags)
	}
	if p.Namespace != "stellar" || p.Labels["team"] != "data" || p.Annotations["owner"] != "ops" || p.Description != "kept" {
		t.Fatalf("metadata not kept: %+v", p)
	}
	if h := p.Component("source.s").Health; h == nil || h.Port != 8088 || h.Path != "/health" {
		t.Fatalf("health_endpoint: %+v", h)
	}
}
