package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadYAML feeds arbitrary documents to the YAML loader through
// LoadBytes. Whatever the input, loading must not panic, must say the same
// thing twice, must point every diagnostic inside the file, and a pipeline it
// returns must render canonically.
func FuzzLoadYAML(f *testing.F) {
	for _, seed := range ylFuzzSeeds {
		f.Add(seed)
	}
	for _, dir := range []string{"testdata/invalid", "testdata/yaml"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			if src, err := os.ReadFile(file); err == nil {
				f.Add(string(src))
			}
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, diags := LoadBytes([]byte(src), "fuzz.yaml", LoadOptions{Environ: []string{}})
		text := FormatDiagnostics(diags)
		for _, d := range diags {
			r := d.Subject
			if r == nil {
				continue
			}
			if r.Filename != "fuzz.yaml" || r.Start.Line < 1 || r.Start.Byte < 0 || r.Start.Byte > r.End.Byte || r.End.Byte > len(src) {
				t.Errorf("diagnostic outside the file: %s (%#v)", FormatDiagnostic(d), *r)
			}
		}
		if p == nil {
			if !diags.HasErrors() {
				t.Fatalf("no pipeline and no error:\n%s", text)
			}
			return
		}
		canon := p.CanonicalJSON()
		for _, c := range p.Components {
			_ = c.UnkeyedSpecHash()
			_ = c.Redacted()
		}
		p2, diags2 := LoadBytes([]byte(src), "fuzz.yaml", LoadOptions{Environ: []string{}})
		if FormatDiagnostics(diags2) != text || string(p2.CanonicalJSON()) != string(canon) {
			t.Fatalf("loading twice differs:\n%s\n%s\n---\n%s\n%s", text, canon, FormatDiagnostics(diags2), p2.CanonicalJSON())
		}
	})
}

var ylFuzzSeeds = []string{
	"",
	"---\n",
	"apiVersion\n",
	"- a\n- b\n",
	"apiVersion: flowctl/v1\nkind: Pipeline\nmetadata:\n  name: x\nspec:\n  sources:\n    - id: a\n      command: [./a]\n",
	`apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: ttp
  labels: {team: data}
spec:
  driver: docker
  config: {network: testnet, list: [1, 2.5, true, null]}
  sources:
    - id: ledger
      type: stellar-live-source@v1.0.0
      config:
        start_ledger: 2187805
        nested: {a: [1, {b: .inf}]}
      health_endpoint: http://localhost:8088/health
      health: {interval: 5s, failure_threshold: 2}
      restart: {policy: always, max_retries: 0, backoff: {initial: 0s, max: 1m, multiplier: 1.5}}
      resources: {requests: {cpu: 250m, memory: 128Mi}, limits: {cpu: 1, memory: 1Gi}}
      ports: [{containerPort: 50051, hostPort: 50051}]
      volumes: [{host_path: ./d, container_path: /d, readonly: yes}]
      secrets: [a, {name: b}]
  processors:
    - id: ttp
      image: withobsrvr/ttp-processor:latest
      command: ["sh", "-c"]
      args: |
        echo hello
      inputs: [ledger]
      env:
        SOURCE_SERVICE_ADDRESS: ${source.ledger.address}
        N: 1.50
  sinks:
    - id: consumer
      command: ./bin/consumer
      executor: process
      inputs: [processor.ttp, ghost, ttp]
      depends_on: [ledger]
      replicas: 2
      stop_timeout: 30s
`,
	"apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  sources:\n    - &a {id: a, command: [x], <<: *a}\n",
	"apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  config: &c {self: *c}\n",
	"apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  sources:\n    - id: a\n      replicas: 99999999999999999999\n      health_port: -1\n      restart: {max_retries: 0x7fffffffffffffff}\n",
	"apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  sources: {a: b}\n  sinks: [1, null, [a]]\n",
	"apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: x}\n---\nkind: Other\n---\n[\n",
	"apiVersion: [flowctl/v1\n",
	"\tapiVersion: flowctl/v1\n",
	"a: *nope\n",
	"? [complex, key]\n: value\n",
	"apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: é}\nspec: {sources: [{id: \"日本\", command: \"x\", env: {\"\": 1, \"A=B\": 2}}]}\n",
	"apiVersion: !!binary Zmxvd2N0bC92MQ==\nkind: !custom Pipeline\nmetadata: {name: !!int 12}\n",
	strings.Repeat("[", 50) + strings.Repeat("]", 50) + "\n",
}
