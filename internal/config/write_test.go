package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var updateWriteGolden = flag.Bool("update-write", false, "rewrite testdata/write/* from the writers' output")

// reload loads what a writer produced, under a name that picks the format.
func reload(t testing.TB, src []byte, format string) *Pipeline {
	t.Helper()
	p, diags := LoadBytes(src, "written."+format, LoadOptions{Environ: []string{}})
	if diags.HasErrors() || p == nil {
		t.Fatalf("written %s does not load:\n%s\n--- written ---\n%s", format, FormatDiagnostics(diags), src)
	}
	return p
}

// canonicalFor is the canonical JSON a format can carry: YAML cannot mark a
// value sensitive.
func canonicalFor(p *Pipeline, format string) string {
	if format != FormatYAML {
		return string(p.CanonicalJSON())
	}
	cp := *p
	cp.Components = nil
	for _, c := range p.Components {
		cc := *c
		cc.Env = map[string]EnvValue{}
		for k, v := range c.Env {
			v.Sensitive = false
			cc.Env[k] = v
		}
		if len(cc.Env) == 0 {
			cc.Env = nil
		}
		cp.Components = append(cp.Components, &cc)
	}
	return string(cp.CanonicalJSON())
}

func write(p *Pipeline, format string) []byte {
	if format == FormatHCL {
		return WriteHCL(p)
	}
	return WriteYAML(p)
}

// assertRoundTrip writes p in format, loads it back and compares.
func assertRoundTrip(t testing.TB, p *Pipeline, format string) *Pipeline {
	t.Helper()
	out := write(p, format)
	q := reload(t, out, format)
	if got, want := canonicalFor(q, format), canonicalFor(p, format); got != want {
		t.Fatalf("%s round trip changed the pipeline\nwant: %s\ngot:  %s\n--- written ---\n%s", format, want, got, out)
	}
	return q
}

// pipelineFiles lists the valid pipelines the loaders are tested on, and
// the examples.
func roundTripFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{
		"testdata/yaml/*.yaml", "testdata/yaml/*.yml", "testdata/hcl/*.hcl",
		"../../examples/*/pipeline.yaml", "../../examples/*/pipeline.hcl",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

func TestWrittenFilesLoadBackToTheSamePipeline(t *testing.T) {
	for _, f := range roundTripFiles(t) {
		t.Run(f, func(t *testing.T) {
			p, diags := Load(f, LoadOptions{Environ: []string{}})
			if diags.HasErrors() {
				t.Skipf("not a valid pipeline on its own:\n%s", FormatDiagnostics(diags))
			}
			for _, format := range []string{FormatHCL, FormatYAML} {
				assertRoundTrip(t, p, format)
			}
		})
	}
}

func TestYAMLToHCLToYAMLKeepsTheYAML(t *testing.T) {
	for _, f := range roundTripFiles(t) {
		if DetectFormat(f, nil) != FormatYAML {
			continue
		}
		t.Run(f, func(t *testing.T) {
			p, diags := Load(f, LoadOptions{Environ: []string{}})
			if diags.HasErrors() {
				t.Skipf("not a valid pipeline on its own:\n%s", FormatDiagnostics(diags))
			}
			viaHCL := assertRoundTrip(t, p, FormatHCL)
			back := assertRoundTrip(t, viaHCL, FormatYAML)
			if !bytes.Equal(WriteYAML(back), WriteYAML(p)) {
				t.Errorf("YAML written after a trip through HCL differs:\n%s\n--- before ---\n%s", WriteYAML(back), WriteYAML(p))
			}
		})
	}
}

// newTestPipeline builds a normalised pipeline from components, as a loader
// would before validation.
func newTestPipeline(executor string, comps ...*Component) *Pipeline {
	p := &Pipeline{Name: "edge", Executor: executor, Components: comps}
	normalize(p)
	return p
}

func env(kv ...string) map[string]EnvValue {
	m := map[string]EnvValue{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = EnvValue{Value: kv[i+1]}
	}
	return m
}

// edgeCases are pipelines that exercise what the writers must get right:
// every field away from its default, values that need quoting or escaping,
// and fields whose zero value means something.
func edgeCases() map[string]*Pipeline {
	src := &Component{Kind: KindSource, ID: "src", Command: []string{"./bin/src"}}
	// An id HCL cannot spell as an identifier: source["9lives"].
	digit := &Component{Kind: KindSource, ID: "9lives", Command: []string{"./bin/cat"}}
	full := &Component{
		Kind: KindProcessor, ID: "full-1", Executor: "docker", Type: "processor",
		Image: "example/full:1.2", Args: []string{"--flag", "true", "8080", ""},
		Inputs: []string{"source.src", "source.9lives"}, DependsOn: []string{"sink.late"},
		Env: env(
			"ADDR", "${source.src.address}",
			"CAT", "${source.9lives.address}/${source.9lives.health_port}",
			"URL", "http://${source.src.address}/x?${not-a-ref}",
			"DOLLAR", "$${source.src.port}",
			"PERCENT", "%{ if true }%%{",
			"QUOTES", "say \"hi\"\\ \n\ttab",
			"for", "keyword key",
			"a.b/c", "dotted key",
			"YES", "yes",
			"EMPTY", "",
			"NUM", "0012",
		),
		Ports: []Port{
			{Name: "grpc", ContainerPort: 50051},
			{ContainerPort: 8080, HostPort: 18080, HostIP: "0.0.0.0", Protocol: "udp"},
			{ContainerPort: 9000, HostPort: 19000},
		},
		Volumes:   []Volume{{Name: "data", HostPath: "/var/data", ContainerPath: "/data", ReadOnly: true}, {HostPath: "./cache", ContainerPath: "/cache"}},
		Resources: Resources{CPULimit: 1500, MemoryLimit: 1 << 30, CPURequest: 1000, MemoryRequest: 1000},
		Health: &Health{Type: HealthExec, Command: []string{"/bin/check", "--quick"}, Port: 9100,
			Interval: Duration(30 * time.Second), Timeout: Duration(500 * time.Millisecond), StartPeriod: Duration(time.Minute),
			FailureThreshold: 5, SuccessThreshold: 2, Liveness: true},
		Restart:          Restart{Policy: RestartAlways, MaxRetries: 3, Backoff: Backoff{Max: Duration(time.Minute), Multiplier: 1.5}},
		StopTimeout:      Duration(90 * time.Second),
		Replicas:         3,
		Secrets:          []string{"db-password", "api-key"},
		InputEventTypes:  []string{"stellar.ledger"},
		OutputEventTypes: []string{"ttp.event", "ttp.summary"},
	}
	full.SetBackoffInitial(0)
	full.SetMaxRetries(3)
	late := &Component{Kind: KindSink, ID: "late", Command: []string{"./bin/late"}, Inputs: []string{"source.src"},
		Health:  &Health{Type: HealthTCP, Port: 7000},
		Restart: Restart{Policy: RestartNever}}
	noRetry := &Component{Kind: KindSink, ID: "no-retry", Command: []string{"./bin/x"}, Inputs: []string{"source.src"},
		Health: &Health{Type: HealthHTTP, Path: "/ready", Port: 7001}}
	noRetry.SetMaxRetries(0)
	url := &Component{Kind: KindSink, ID: "url", Command: []string{"./bin/x"}, Inputs: []string{"source.src"},
		Health:  &Health{Type: HealthHTTP, URL: "http://localhost:7002/health", Timeout: Duration(time.Second)},
		Restart: Restart{Policy: RestartAlways}}

	// The YAML loader derives path and port from health_endpoint; the HCL
	// loader keeps only the URL of http = "http://...". Each form round-trips
	// through its own format (see TestHealthURLMeansTheSameInBothFormats).
	urlAsYAML := &Component{Kind: KindSink, ID: "url", Command: []string{"./bin/x"}, Inputs: []string{"source.src"},
		Health: &Health{Type: HealthHTTP, URL: "http://localhost:7002/health", Path: "/health", Port: 7002, Interval: Duration(time.Minute)}}

	registry := &Component{Kind: KindSource, ID: "ledger", Type: "stellar-live-source@v1.0.0",
		Env: env("START_LEDGER", "1000")}
	registryCmd := &Component{Kind: KindSink, ID: "cmd", Type: "consumer@v2", Command: []string{"./consumer"},
		Inputs: []string{"source.ledger"}, Executor: "process"}

	secret := &Component{Kind: KindSource, ID: "secret", Command: []string{"./bin/s"},
		Env: map[string]EnvValue{"TOKEN": {Value: "s3cr${et", Sensitive: true}, "PLAIN": {Value: "x"}}}

	withMeta := newTestPipeline("docker", registry, registryCmd)
	withMeta.Namespace = "ns"
	withMeta.Description = "line one\nline \"two\""
	withMeta.Labels = map[string]string{"app.kubernetes.io/name": "edge", "true": "false"}
	withMeta.Annotations = map[string]string{"note": "${literal}"}
	withMeta.Config = map[string]string{"log_level": "debug", "count": "3"}
	withMeta.ComponentRegistry = "ghcr.io/acme"
	// The registry changed after normalisation: re-derive the image.
	registry.Image = ""
	normalize(withMeta)

	return map[string]*Pipeline{
		"every field":         newTestPipeline("process", src, digit, full, late, noRetry),
		"health url/hcl":      newTestPipeline("process", src, url),
		"health url/yaml":     newTestPipeline("process", src, urlAsYAML),
		"registry style":      withMeta,
		"sensitive env value": newTestPipeline("process", secret),
	}
}

func TestWritersKeepEveryField(t *testing.T) {
	for name, p := range edgeCases() {
		for _, format := range []string{FormatHCL, FormatYAML} {
			if strings.HasPrefix(name, "health url/") && !strings.HasSuffix(name, format) {
				continue
			}
			t.Run(name+"/"+format, func(t *testing.T) { assertRoundTrip(t, p, format) })
		}
	}
}

// A probe of a full URL must mean the same whichever format states it, or
// converting it between formats changes the pipeline (convert refuses).
func TestHealthURLMeansTheSameInBothFormats(t *testing.T) {
	y := reload(t, []byte(`apiVersion: flowctl/v1
kind: Pipeline
metadata: {name: u}
spec:
  sources:
    - id: s
      command: [./s]
      health_endpoint: http://localhost:7002/health
`), FormatYAML)
	h := reload(t, []byte(`pipeline "u" {}
source "s" {
  command = ["./s"]
  health { http = "http://localhost:7002/health" }
}
`), FormatHCL)
	if got, want := string(h.CanonicalJSON()), string(y.CanonicalJSON()); got != want {
		t.Errorf("the loaders disagree on a full-URL probe (YAML derives its path and port, HCL does not):\nyaml: %s\nhcl:  %s", want, got)
	}
}

func TestWriteHCLKeepsSensitiveValuesSensitive(t *testing.T) {
	p := edgeCases()["sensitive env value"]
	out := WriteHCL(p)
	if !bytes.Contains(out, []byte("sensitive   = true")) || !bytes.Contains(out, []byte("TOKEN = var.secret_token")) {
		t.Errorf("want the value behind a sensitive variable, got:\n%s", out)
	}
	if got := SensitiveEnv(p); len(got) != 1 || got[0] != "source.secret: TOKEN" {
		t.Errorf("SensitiveEnv = %q", got)
	}
}

func TestWriteHCLOmitsDefaults(t *testing.T) {
	p := newTestPipeline("process", &Component{Kind: KindSource, ID: "s", Command: []string{"./s"}})
	want := "pipeline \"edge\" {\n  executor = \"process\"\n}\n\nsource \"s\" {\n  command = [\"./s\"]\n}\n"
	if got := string(WriteHCL(p)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteYAMLUsesEcosystemFieldsWhenTheySayEverything(t *testing.T) {
	c := &Component{Kind: KindSource, ID: "s", Image: "img", Health: &Health{Type: HealthHTTP, Path: "/health", Port: 8088},
		Restart: Restart{Policy: "unless-stopped"}, Resources: Resources{CPULimit: 500, MemoryLimit: 256 << 20}}
	out := string(WriteYAML(newTestPipeline("docker", c)))
	for _, want := range []string{"health_port: 8088\n", "health_check: /health\n", "restart_policy: always\n", "cpu: 500m\n", "memory: 256Mi\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"health:", "restart:"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("did not want %q in:\n%s", unwanted, out)
		}
	}
}

func TestWrittenExamplesMatchGoldenFiles(t *testing.T) {
	p, diags := Load("../../examples/docker-ttp/pipeline.hcl", LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("example does not load:\n%s", FormatDiagnostics(diags))
	}
	for _, format := range []string{FormatHCL, FormatYAML} {
		golden := filepath.Join("testdata", "write", "docker-ttp."+format)
		got := write(p, format)
		if *updateWriteGolden {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -run %s -update-write)", err, t.Name())
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs:\n--- got ---\n%s\n--- want ---\n%s", golden, got, want)
		}
	}
}

func FuzzWritersKeepEnvValues(f *testing.F) {
	for _, s := range []string{"plain", "${source.a.address}", "$${source.a.address}", "%{", "a$", "\"\\\n", "yes", "0x10", "- item", "key: value", "#c"} {
		f.Add("KEY", s)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		if !utf8.ValidString(key) || !utf8.ValidString(value) || strings.ContainsAny(key+value, "\x00\uFFFD") || key == "" || strings.Contains(key, "=") {
			t.Skip("not an environment variable")
		}
		a := &Component{Kind: KindSource, ID: "a", Command: []string{"./a"}}
		c := &Component{Kind: KindSink, ID: "c", Command: []string{"./c"}, Inputs: []string{"source.a"}, Env: env(key, value)}
		p := newTestPipeline("process", a, c)
		if ds := Validate(p); ds.HasErrors() {
			t.Skip("not a valid pipeline")
		}
		for _, format := range []string{FormatHCL, FormatYAML} {
			assertRoundTrip(t, p, format)
		}
	})
}
