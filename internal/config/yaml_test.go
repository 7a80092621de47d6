package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/testutil/golden"
	"github.com/hashicorp/hcl/v2"
)

// ylLoad loads src as test.yaml the way the CLI does (normalise, validate).
func ylLoad(t *testing.T, src string) (*Pipeline, hcl.Diagnostics) {
	t.Helper()
	return LoadBytes([]byte(src), "test.yaml", LoadOptions{Environ: []string{}})
}

// ylMustLoad loads src and fails the test on any error diagnostic.
func ylMustLoad(t *testing.T, src string) *Pipeline {
	t.Helper()
	p, diags := ylLoad(t, src)
	if diags.HasErrors() || p == nil {
		t.Fatalf("unexpected errors:\n%s", FormatDiagnostics(diags))
	}
	return p
}

// ylAt is "test.yaml:LINE:COL" of the first occurrence of needle in src,
// so expectations name the text they point at rather than magic numbers.
func ylAt(t *testing.T, src, needle string) string {
	t.Helper()
	i := strings.Index(src, needle)
	if i < 0 {
		t.Fatalf("%q not in source", needle)
	}
	line := strings.Count(src[:i], "\n") + 1
	col := i - strings.LastIndex(src[:i], "\n")
	return fmt.Sprintf("test.yaml:%d:%d", line, col)
}

// ylPipeline wraps component lists in a pipeline header with the docker
// driver (so images need no command).
func ylPipeline(spec string) string {
	return "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata:\n  name: test\nspec:\n  driver: docker\n" + spec
}

func ylComp(t *testing.T, p *Pipeline, addr string) *Component {
	t.Helper()
	c := p.Component(addr)
	if c == nil {
		t.Fatalf("no component %s", addr)
	}
	return c
}

func ylWantDiag(t *testing.T, diags hcl.Diagnostics, want string) {
	t.Helper()
	got := FormatDiagnostics(diags)
	if !strings.Contains(got, want) {
		t.Errorf("diagnostics do not contain\n  %s\ngot:\n%s", want, got)
	}
}

func TestYAMLExplicitStyleLoadsEveryField(t *testing.T) {
	src := `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: ttp
  namespace: testnet
  labels: {team: data}
  annotations:
    owner: ops
spec:
  description: token transfers
  driver: docker
  sources:
    - id: ledger
      image: withobsrvr/stellar-live-source:latest
      env:
        STELLAR_NETWORK: testnet
        HEALTH_PORT: 8088
      health_port: 8088
      ports:
        - name: grpc
          containerPort: 50051
          hostPort: 50051
          protocol: TCP
      volumes:
        - name: data
          host_path: ./data
          container_path: /data
          readonly: true
      resources:
        requests: {cpu: 250m, memory: 128Mi}
        limits: {cpu: "1", memory: 1Gi}
      secrets: [db-password]
      output_event_types: [stellar.ledger]
  processors:
    - id: ttp
      image: withobsrvr/ttp-processor:latest
      inputs: [ledger]
      replicas: 2
      restart_policy: always
      input_event_types: [stellar.ledger]
  sinks:
    - id: consumer
      command: [./bin/consumer, --verbose]
      executor: process
      depends_on: [ttp]
      inputs: [ttp]
`
	p := ylMustLoad(t, src)
	if p.Name != "ttp" || p.Namespace != "testnet" || p.Description != "token transfers" || p.Executor != "docker" || p.Format != FormatYAML {
		t.Errorf("pipeline = %+v", p)
	}
	if !reflect.DeepEqual(p.Labels, map[string]string{"team": "data"}) || !reflect.DeepEqual(p.Annotations, map[string]string{"owner": "ops"}) {
		t.Errorf("labels %v, annotations %v", p.Labels, p.Annotations)
	}

	src0 := ylComp(t, p, "source.ledger")
	wantEnv := map[string]EnvValue{"STELLAR_NETWORK": {Value: "testnet"}, "HEALTH_PORT": {Value: "8088"}}
	if !reflect.DeepEqual(src0.Env, wantEnv) {
		t.Errorf("env = %v", src0.Env)
	}
	if h := src0.Health; h == nil || h.Type != HealthHTTP || h.Port != 8088 || h.Path != "/health" {
		t.Errorf("health = %+v", src0.Health)
	}
	wantPorts := []Port{{Name: "grpc", ContainerPort: 50051, HostPort: 50051, HostIP: DefaultHostIP, Protocol: "tcp"}}
	if !reflect.DeepEqual(src0.Ports, wantPorts) {
		t.Errorf("ports = %+v", src0.Ports)
	}
	wantVols := []Volume{{Name: "data", HostPath: "./data", ContainerPath: "/data", ReadOnly: true}}
	if !reflect.DeepEqual(src0.Volumes, wantVols) {
		t.Errorf("volumes = %+v", src0.Volumes)
	}
	wantRes := Resources{CPULimit: 1000, MemoryLimit: 1 << 30, CPURequest: 250, MemoryRequest: 128 << 20}
	if src0.Resources != wantRes {
		t.Errorf("resources = %+v", src0.Resources)
	}
	if !reflect.DeepEqual(src0.Secrets, []string{"db-password"}) || !reflect.DeepEqual(src0.OutputEventTypes, []string{"stellar.ledger"}) {
		t.Errorf("secrets %v, output types %v", src0.Secrets, src0.OutputEventTypes)
	}

	ttp := ylComp(t, p, "processor.ttp")
	if ttp.Replicas != 2 || ttp.Restart.Policy != RestartAlways || ttp.Restart.MaxRetries != UnlimitedRetries {
		t.Errorf("ttp = replicas %d restart %+v", ttp.Replicas, ttp.Restart)
	}
	if !reflect.DeepEqual(ttp.Inputs, []string{"source.ledger"}) || !reflect.DeepEqual(ttp.InputEventTypes, []string{"stellar.ledger"}) {
		t.Errorf("ttp inputs %v, input types %v", ttp.Inputs, ttp.InputEventTypes)
	}

	sink := ylComp(t, p, "sink.consumer")
	if sink.Executor != "process" || !reflect.DeepEqual(sink.Command, []string{"./bin/consumer", "--verbose"}) {
		t.Errorf("sink = executor %q command %v", sink.Executor, sink.Command)
	}
	if !reflect.DeepEqual(sink.DependsOn, []string{"processor.ttp"}) {
		t.Errorf("depends_on = %v", sink.DependsOn)
	}
}

func TestYAMLRegistryStyleConfigBecomesUpperCasedEnv(t *testing.T) {
	src := ylPipeline(`  sources:
    - id: stellar-source
      type: stellar-live-source@v1.0.0
      config:
        network_passphrase: "Test SDF Network ; September 2015"
        start_ledger: 2187805
        backend-type: RPC
        verbose: true
        ratio: 0.25
        assets: [USDC, XLM]
        retry: {max: 3}
        empty:
      env:
        START_LEDGER: "100"
`)
	p := ylMustLoad(t, src)
	c := ylComp(t, p, "source.stellar-source")
	if c.Image != "withobsrvr/stellar-live-source:v1.0.0" || c.Executor != "docker" || c.Type != "stellar-live-source@v1.0.0" {
		t.Errorf("image %q executor %q type %q", c.Image, c.Executor, c.Type)
	}
	want := map[string]string{
		"NETWORK_PASSPHRASE": "Test SDF Network ; September 2015",
		"START_LEDGER":       "100", // explicit env wins over config
		"BACKEND_TYPE":       "RPC",
		"VERBOSE":            "true",
		"RATIO":              "0.25",
		"ASSETS":             `["USDC","XLM"]`,
		"RETRY":              `{"max":3}`,
		"EMPTY":              "",
	}
	got := map[string]string{}
	for k, v := range c.Env {
		got[k] = v.Value
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("env = %v\nwant  %v", got, want)
	}
	if r := c.Range("env.NETWORK_PASSPHRASE"); fmt.Sprintf("test.yaml:%d:%d", r.Start.Line, r.Start.Column) != ylAt(t, src, `"Test SDF`) {
		t.Errorf("env.NETWORK_PASSPHRASE range = %v", r)
	}

	// Without the explicit env, the config value is the one used.
	p = ylMustLoad(t, strings.Replace(src, "      env:\n        START_LEDGER: \"100\"\n", "", 1))
	if v := ylComp(t, p, "source.stellar-source").Env["START_LEDGER"].Value; v != "2187805" {
		t.Errorf("START_LEDGER = %q, want 2187805", v)
	}
}

func TestYAMLConfigKeysThatCollideAsEnvAreAnError(t *testing.T) {
	src := ylPipeline(`  sources:
    - id: s
      image: x
      config:
        start_ledger: 1
        start-ledger: 2
`)
	_, diags := ylLoad(t, src)
	ylWantDiag(t, diags, ylAt(t, src, "start-ledger")+`: error: Conflicting config keys: source.s: config keys "start_ledger" and "start-ledger" both become the environment variable START_LEDGER; keep one`)
}

func TestYAMLArgsBlockScalarIsOneArgument(t *testing.T) {
	p := ylMustLoad(t, ylPipeline(`  sources:
    - id: gen
      command: ["sh", "-c"]
      args: |
        while true; do
          echo "{\"n\": 1}"
          sleep 2
        done
`))
	c := ylComp(t, p, "source.gen")
	want := []string{"while true; do\n  echo \"{\\\"n\\\": 1}\"\n  sleep 2\ndone\n"}
	if !reflect.DeepEqual(c.Args, want) || !reflect.DeepEqual(c.Command, []string{"sh", "-c"}) {
		t.Errorf("command %q args %q", c.Command, c.Args)
	}
}

func TestYAMLCommandAndArgsAcceptAListOrOneString(t *testing.T) {
	for _, tc := range []struct {
		name, command, args string
		wantCmd, wantArgs   []string
	}{
		{"lists", "[./bin/x, run]", "[--port, 8080, --debug, true]", []string{"./bin/x", "run"}, []string{"--port", "8080", "--debug", "true"}},
		{"strings", "./bin/x", "--once", []string{"./bin/x"}, []string{"--once"}},
		{"block list", "\n        - ./bin/x\n        - run", "\n        - -v", []string{"./bin/x", "run"}, []string{"-v"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ylMustLoad(t, ylPipeline("  sources:\n    - id: s\n      command: "+tc.command+"\n      args: "+tc.args+"\n"))
			c := ylComp(t, p, "source.s")
			if !reflect.DeepEqual(c.Command, tc.wantCmd) || !reflect.DeepEqual(c.Args, tc.wantArgs) {
				t.Errorf("command %q args %q", c.Command, c.Args)
			}
		})
	}
}

func TestYAMLEnvValuesAreKeptAsWritten(t *testing.T) {
	p := ylMustLoad(t, ylPipeline(`  sources:
    - id: ledger
      image: x
  processors:
    - id: ttp
      image: x
      inputs: [ledger]
      env:
        PORT: 8080
        RATIO: 1.50
        HEX: 0x1F
        DEBUG: true
        WORD: yes
        EMPTY:
        SOURCE_SERVICE_ADDRESS: ${source.ledger.address}
        SHELL_VAR: ${HOME}/data
        QUOTED: "00123"
`))
	c := ylComp(t, p, "processor.ttp")
	want := map[string]EnvValue{
		"PORT":                   {Value: "8080"},
		"RATIO":                  {Value: "1.50"},
		"HEX":                    {Value: "0x1F"},
		"DEBUG":                  {Value: "true"},
		"WORD":                   {Value: "yes"},
		"EMPTY":                  {Value: ""},
		"SOURCE_SERVICE_ADDRESS": {Value: "${source.ledger.address}", Deferred: true},
		"SHELL_VAR":              {Value: "${HOME}/data"},
		"QUOTED":                 {Value: "00123"},
	}
	if !reflect.DeepEqual(c.Env, want) {
		t.Errorf("env = %v", c.Env)
	}
	if !reflect.DeepEqual(c.Upstreams(), []string{"source.ledger"}) {
		t.Errorf("upstreams = %v", c.Upstreams())
	}
}

func TestYAMLUnknownKeyIsAWarningWithItsLine(t *testing.T) {
	for _, tc := range []struct {
		name, spec, needle, want string
	}{
		{"component unrelated", "  sources:\n    - id: s\n      image: x\n      colour: blue\n", "colour",
			`warning: Unknown key: source.s: unknown key "colour" is ignored`},
		{"extension", "  sources:\n    - id: s\n      image: x\n      x-team: ingest\n", "x-team",
			`warning: Unknown key: source.s: unknown key "x-team" is ignored`},
		{"spec", "  pipelines: []\n", "pipelines",
			`warning: Unknown key: unknown key "pipelines" in spec is ignored`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := ylPipeline(tc.spec)
			_, diags := ylLoad(t, src)
			if diags.HasErrors() {
				t.Fatalf("unknown keys far from every known key must not be errors:\n%s", FormatDiagnostics(diags))
			}
			ylWantDiag(t, diags, ylAt(t, src, tc.needle)+": "+tc.want)
		})
	}

	src := strings.Replace(ylPipeline(""), "metadata:", "status: {}\nmetadata:", 1)
	_, diags := ylLoad(t, src)
	ylWantDiag(t, diags, ylAt(t, src, "status")+`: warning: Unknown key: unknown key "status" is ignored`)
}

// A key within two edits of a known one is a typo that would lose its value
// (a misspelt "sinks" drops every sink from the plan): an error, with the
// suggestion and the key's line and column.
func TestYAMLNearMissKeyIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name, spec, needle, want string
	}{
		{"component typo", "  sources:\n    - id: s\n      image: x\n      helth_port: 8088\n", "helth_port",
			`error: Misspelt key: source.s: unknown key "helth_port"; did you mean "health_port"?`},
		{"nested", "  sources:\n    - id: s\n      image: x\n      health:\n        http: /h\n        intervall: 5s\n", "intervall",
			`error: Misspelt key: source.s: unknown key "intervall" in health; did you mean "interval"?`},
		{"port case", "  sources:\n    - id: s\n      image: x\n      ports:\n        - containerport: 80\n          container_port: 80\n", "containerport",
			`error: Misspelt key: source.s: unknown key "containerport" in ports[0]; did you mean "containerPort"?`},
		{"spec sorces", "  sorces: []\n", "sorces",
			`error: Misspelt key: unknown key "sorces" in spec; did you mean "sources"?`},
		{"spec sinkz", "  sinkz: []\n", "sinkz",
			`error: Misspelt key: unknown key "sinkz" in spec; did you mean "sinks"?`},
		{"inputs", "  sinks:\n    - id: s\n      image: x\n      inptus: [a]\n", "inptus",
			`error: Misspelt key: sink.s: unknown key "inptus"; did you mean "inputs"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := ylPipeline(tc.spec)
			_, diags := ylLoad(t, src)
			ylWantDiag(t, diags, ylAt(t, src, tc.needle)+": "+tc.want)
		})
	}

	src := strings.Replace(ylPipeline(""), "metadata:", "metadata:\n  nmae: x", 1)
	_, diags := ylLoad(t, src)
	ylWantDiag(t, diags, ylAt(t, src, "nmae")+`: error: Misspelt key: unknown key "nmae" in metadata; did you mean "name"?`)
}

func TestYAMLWrongTypeIsAnErrorAtTheValue(t *testing.T) {
	for _, tc := range []struct {
		name, spec, needle, want string
	}{
		{"replicas string", "replicas: two", "two", `sink.c: replicas must be a whole number, got string "two"`},
		{"replicas float", "replicas: 1.5", "1.5", `sink.c: replicas must be a whole number, got number 1.5`},
		{"replicas huge", "replicas: 99999999999999999999", "999", `sink.c: replicas must be a whole number, got number 99999999999999999999, which is too large`},
		{"image map", "image: {name: x}", "{name", `sink.c: image must be a string, got a map`},
		{"inputs string", "inputs: src", "src", `sink.c: inputs must be a list of component ids, got string "src"`},
		{"inputs item map", "inputs: [{id: src}]", "{id", `sink.c: inputs[0] must be a string, got a map`},
		{"env nested", "env: {A: [1, 2]}", "[1", `sink.c: env.A must be a string, number or boolean, got a list`},
		{"env list", "env: [A=1]", "[A", `sink.c: env must be a map of strings, got a list`},
		{"health_port string", "health_port: http", "http", `sink.c: health_port must be a whole number, got string "http"`},
		{"readonly", "volumes: [{host_path: /a, container_path: /b, readonly: maybe}]", "maybe", `sink.c: volumes[0].readonly must be true or false, got string "maybe"`},
		{"ports map", "ports: {containerPort: 80}", "{containerPort", `sink.c: ports must be a list of ports, got a map`},
		{"multiplier", "restart: {backoff: {multiplier: fast}}", "fast", `sink.c: restart.backoff.multiplier must be a number, got string "fast"`},
		{"multiplier inf", "restart: {backoff: {multiplier: .inf}}", ".inf", `sink.c: restart.backoff.multiplier must be a finite number, got number .inf`},
		{"config list", "config: [a]", "[a]", `sink.c: config must be a map, got a list`},
		{"event types", "input_event_types: x", "x", `sink.c: input_event_types must be a list of strings, got string "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := ylPipeline("  sources:\n    - id: src\n      image: x\n  sinks:\n    - id: c\n      inputs: [src]\n      " + tc.spec + "\n")
			if strings.HasPrefix(tc.spec, "inputs") {
				src = strings.Replace(src, "      inputs: [src]\n", "", 1)
			}
			_, diags := ylLoad(t, src)
			at := strings.Index(src, tc.spec) + strings.Index(tc.spec, tc.needle)
			ylWantDiag(t, diags, ylAt(t, src[:at]+"\x00", "\x00")+": error: Wrong type: "+tc.want)
		})
	}
}

func TestYAMLReportsEveryProblemAndKeepsGoing(t *testing.T) {
	src := ylPipeline(`  sources:
    - id: a
      image: x
      replicas: many
      stop_timeout: soon
  sinks:
    - id: b
      image: x
      inputs: [a]
      health_port: [1]
      resources: {limits: {memory: 12Qi}}
`)
	p, diags := ylLoad(t, src)
	if p == nil {
		t.Fatal("a file with bad values still yields a pipeline")
	}
	for _, want := range []string{
		ylAt(t, src, "many") + ": error: Wrong type: source.a: replicas",
		ylAt(t, src, "soon") + `: error: Invalid duration: source.a: stop_timeout "soon" is not a duration`,
		ylAt(t, src, "[1]") + ": error: Wrong type: sink.b: health_port",
		ylAt(t, src, "12Qi") + `: error: Invalid quantity: sink.b: resources.limits.memory: invalid memory quantity "12Qi"`,
	} {
		ylWantDiag(t, diags, want)
	}
}

func TestYAMLHealthEndpointIsParsedIntoURLPortAndPath(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		want     Health
		err      string
	}{
		{"http://localhost:8088/health", Health{Type: HealthHTTP, URL: "http://localhost:8088/health", Port: 8088, Path: "/health"}, ""},
		{"https://example.com/ready?x=1", Health{Type: HealthHTTP, URL: "https://example.com/ready?x=1", Path: "/ready"}, ""},
		{"http://127.0.0.1:9000", Health{Type: HealthHTTP, URL: "http://127.0.0.1:9000", Port: 9000}, ""},
		{"localhost:8088/health", Health{}, `sink.c: health_endpoint "localhost:8088/health" is not a full URL; write it like http://localhost:8088/health`},
		{"http://localhost:99999/health", Health{}, `sink.c: health_endpoint "http://localhost:99999/health" has port "99999", which is outside 1-65535`},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			src := ylPipeline("  sinks:\n    - id: c\n      image: x\n      inputs: [sink.c]\n      health_endpoint: " + tc.endpoint + "\n")
			p, diags := ylLoad(t, src)
			if tc.err != "" {
				ylWantDiag(t, diags, ylAt(t, src, tc.endpoint)+": error: Invalid health endpoint: "+tc.err)
				return
			}
			h := ylComp(t, p, "sink.c").Health
			if h == nil {
				t.Fatal("no health")
			}
			h.Interval, h.Timeout, h.FailureThreshold, h.SuccessThreshold = 0, 0, 0, 0
			if !reflect.DeepEqual(*h, tc.want) {
				t.Errorf("health = %+v, want %+v", *h, tc.want)
			}
		})
	}
}

func TestYAMLHealthMapWinsFieldByField(t *testing.T) {
	p := ylMustLoad(t, ylPipeline(`  sources:
    - id: a
      image: x
      health_port: 8088
      health_check: /status
      health:
        port: 9090
        interval: 5s
        timeout: 1s
        start_period: 30s
        failure_threshold: 5
        success_threshold: 2
        liveness: true
    - id: b
      image: x
      health_check: /status
      health:
        exec: [pg_isready, -q]
    - id: c
      image: x
      health: {tcp: true, port: 5432}
`))
	want := Health{Type: HealthHTTP, Path: "/status", Port: 9090, Interval: Duration(5e9), Timeout: Duration(1e9),
		StartPeriod: Duration(30e9), FailureThreshold: 5, SuccessThreshold: 2, Liveness: true}
	if h := ylComp(t, p, "source.a").Health; !reflect.DeepEqual(*h, want) {
		t.Errorf("a: health = %+v", *h)
	}
	if h := ylComp(t, p, "source.b").Health; h.Type != HealthExec || h.Path != "" || !reflect.DeepEqual(h.Command, []string{"pg_isready", "-q"}) {
		t.Errorf("b: health = %+v", *h)
	}
	if h := ylComp(t, p, "source.c").Health; h.Type != HealthTCP || h.Port != 5432 {
		t.Errorf("c: health = %+v", *h)
	}

	src := ylPipeline("  sources:\n    - id: a\n      image: x\n      health: {http: /h, tcp: true}\n")
	_, diags := ylLoad(t, src)
	ylWantDiag(t, diags, "error: Conflicting health probes: source.a: health sets http and tcp; give one of http, tcp or exec")
}

func TestYAMLResourcesParseKubernetesQuantities(t *testing.T) {
	for _, tc := range []struct {
		res  string
		want Resources
		err  string
	}{
		{"{limits: {cpu: 500m, memory: 256Mi}}", Resources{CPULimit: 500, MemoryLimit: 256 << 20}, ""},
		{"{limits: {cpu: 2, memory: 2000000000}, requests: {cpu: 0.5, memory: 1G}}", Resources{CPULimit: 2000, MemoryLimit: 2e9, CPURequest: 500, MemoryRequest: 1e9}, ""},
		{"{requests: {cpu: 500x}}", Resources{}, `error: Invalid quantity: source.s: resources.requests.cpu: invalid CPU quantity "500x"`},
		{"{limits: {memory: 12Qi}}", Resources{}, `error: Invalid quantity: source.s: resources.limits.memory: invalid memory quantity "12Qi"`},
		{"{limits: {cpus: 1}}", Resources{}, `error: Misspelt key: source.s: unknown key "cpus" in resources.limits; did you mean "cpu"?`},
		{"{limits: 1}", Resources{}, `error: Wrong type: source.s: resources.limits must be a map with cpu and memory, got number 1`},
	} {
		t.Run(tc.res, func(t *testing.T) {
			p, diags := ylLoad(t, ylPipeline("  sources:\n    - id: s\n      image: x\n      resources: "+tc.res+"\n"))
			if tc.err != "" {
				ylWantDiag(t, diags, tc.err)
				return
			}
			if diags.HasErrors() {
				t.Fatal(FormatDiagnostics(diags))
			}
			if got := ylComp(t, p, "source.s").Resources; got != tc.want {
				t.Errorf("resources = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestYAMLInputsResolveIdsToAddresses(t *testing.T) {
	src := ylPipeline(`  sources:
    - id: ledger
      image: x
  processors:
    - id: late
      image: x
      inputs: [early]
    - id: early
      image: x
      inputs: [ledger]
  sinks:
    - id: out
      image: x
      inputs:
        - late
        - source.ledger
        - ghost
      depends_on: [early, processor.late]
`)
	p, diags := ylLoad(t, src)
	out := ylComp(t, p, "sink.out")
	if want := []string{"ghost", "processor.late", "source.ledger"}; !reflect.DeepEqual(out.Inputs, want) {
		t.Errorf("inputs = %v, want %v", out.Inputs, want)
	}
	if want := []string{"processor.early", "processor.late"}; !reflect.DeepEqual(out.DependsOn, want) {
		t.Errorf("depends_on = %v, want %v", out.DependsOn, want)
	}
	if got := ylComp(t, p, "processor.late").Inputs; !reflect.DeepEqual(got, []string{"processor.early"}) {
		t.Errorf("a forward reference resolves too: got %v", got)
	}
	// inputs.N names the range of Inputs[N], whatever the order written.
	for i, needle := range []string{"ghost", "late\n        - source", "source.ledger"} {
		r := out.Range(fmt.Sprintf("inputs.%d", i))
		if got := fmt.Sprintf("test.yaml:%d:%d", r.Start.Line, r.Start.Column); got != ylAt(t, src, needle) {
			t.Errorf("inputs.%d (%s) at %s, want %s", i, out.Inputs[i], got, ylAt(t, src, needle))
		}
	}
	ylWantDiag(t, diags, ylAt(t, src, "ghost")+`: error: Unknown input: sink.out: input "ghost" is not a component of this pipeline`)
}

func TestYAMLDuplicateInputIsAWarning(t *testing.T) {
	src := ylPipeline("  sources:\n    - id: a\n      image: x\n  sinks:\n    - id: b\n      image: x\n      inputs: [a, source.a]\n")
	p, diags := ylLoad(t, src)
	ylWantDiag(t, diags, ylAt(t, src, "source.a")+": warning: Duplicate entry: sink.b: inputs lists source.a twice (first at line 13)")
	if got := ylComp(t, p, "sink.b").Inputs; !reflect.DeepEqual(got, []string{"source.a"}) {
		t.Errorf("inputs = %v", got)
	}
}

func TestYAMLDriverAndExecutorAreTheSameField(t *testing.T) {
	const comps = "  sources:\n    - id: s\n      image: x\n"
	header := "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata:\n  name: t\nspec:\n"
	viaDriver := ylMustLoad(t, header+"  driver: docker\n"+comps)
	viaExecutor := ylMustLoad(t, header+"  executor: docker\n"+comps)
	both := ylMustLoad(t, header+"  driver: docker\n  executor: docker\n"+comps)
	if string(viaDriver.CanonicalJSON()) != string(viaExecutor.CanonicalJSON()) || string(both.CanonicalJSON()) != string(viaDriver.CanonicalJSON()) {
		t.Errorf("driver and executor differ:\n%s\n%s", viaDriver.CanonicalJSON(), viaExecutor.CanonicalJSON())
	}
	if viaDriver.Executor != "docker" || viaDriver.Components[0].Executor != "docker" {
		t.Errorf("executor = %q", viaDriver.Executor)
	}

	src := header + "  driver: docker\n  executor: process\n" + comps
	_, diags := ylLoad(t, src)
	ylWantDiag(t, diags, ylAt(t, src, "executor")+`: error: Conflicting keys: spec.driver and spec.executor are the same field and disagree (string "docker", string "process"); give one of them`)

	// Per component too.
	p := ylMustLoad(t, header+"  driver: process\n  sources:\n    - id: s\n      image: x\n      driver: docker\n")
	if c := p.Components[0]; c.Executor != "docker" {
		t.Errorf("component driver: executor = %q", c.Executor)
	}
}

func TestYAMLRestartPolicyAndExtensions(t *testing.T) {
	p := ylMustLoad(t, ylPipeline(`  sources:
    - id: legacy
      image: x
      restart_policy: unless-stopped
    - id: never-retry
      image: x
      restart:
        policy: on-failure
        max_retries: 0
        backoff: {initial: 0s, max: 1m, multiplier: 1.5}
      stop_timeout: 30s
`))
	if r := ylComp(t, p, "source.legacy").Restart; r.Policy != RestartAlways || r.MaxRetries != UnlimitedRetries {
		t.Errorf("legacy restart = %+v", r)
	}
	c := ylComp(t, p, "source.never-retry")
	want := Restart{Policy: RestartOnFailure, MaxRetries: 0, Backoff: Backoff{Initial: 0, Max: Duration(60e9), Multiplier: 1.5}}
	if c.Restart != want || c.StopTimeout != Duration(30e9) {
		t.Errorf("restart = %+v stop_timeout %s", c.Restart, c.StopTimeout)
	}

	src := ylPipeline("  sources:\n    - id: s\n      image: x\n      restart_policy: always\n      restart: {policy: never}\n")
	_, diags := ylLoad(t, src)
	ylWantDiag(t, diags, ylAt(t, src, "never")+`: error: Conflicting restart policies: source.s: restart.policy "never" disagrees with restart_policy "always" at line 10; give one of them`)
}

func TestYAMLDurationErrorsNameTheComponent(t *testing.T) {
	for _, field := range []string{"stop_timeout: 10", "health: {http: /h, interval: fast}", "restart: {backoff: {max: 1y}}"} {
		src := ylPipeline("  sources:\n    - id: s\n      image: x\n      " + field + "\n")
		_, diags := ylLoad(t, src)
		ylWantDiag(t, diags, ": error: Invalid duration: source.s: ")
	}
}

func TestYAMLPortsAndVolumesAcceptBothSpellings(t *testing.T) {
	p := ylMustLoad(t, ylPipeline(`  sources:
    - id: s
      image: x
      ports:
        - {containerPort: 80, hostPort: 8080, hostIP: 0.0.0.0, protocol: udp}
        - {container_port: 81, host_port: 8081, host_ip: 0.0.0.0}
      volumes:
        - {host_path: /a, container_path: /b, read_only: true}
        - {host_path: /c, container_path: /d}
`))
	c := ylComp(t, p, "source.s")
	wantPorts := []Port{
		{ContainerPort: 80, HostPort: 8080, HostIP: "0.0.0.0", Protocol: "udp"},
		{ContainerPort: 81, HostPort: 8081, HostIP: "0.0.0.0", Protocol: "tcp"},
	}
	wantVols := []Volume{{HostPath: "/a", ContainerPath: "/b", ReadOnly: true}, {HostPath: "/c", ContainerPath: "/d"}}
	if !reflect.DeepEqual(c.Ports, wantPorts) || !reflect.DeepEqual(c.Volumes, wantVols) {
		t.Errorf("ports %+v volumes %+v", c.Ports, c.Volumes)
	}

	src := ylPipeline("  sources:\n    - id: s\n      image: x\n      ports: [{containerPort: 80, container_port: 81}]\n")
	_, diags := ylLoad(t, src)
	ylWantDiag(t, diags, `error: Conflicting keys: source.s: ports[0].containerPort and ports[0].container_port are the same field and disagree (number 80, number 81); give one of them`)
}

func TestYAMLSecretsAreNamesOrMapsWithAName(t *testing.T) {
	p := ylMustLoad(t, ylPipeline("  sources:\n    - id: s\n      image: x\n      secrets:\n        - b\n        - name: a\n"))
	if got := ylComp(t, p, "source.s").Secrets; !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("secrets = %v", got)
	}
	_, diags := ylLoad(t, ylPipeline("  sources:\n    - id: s\n      image: x\n      secrets: [{key: a}]\n"))
	ylWantDiag(t, diags, "error: Missing secret name: source.s: secrets[0] needs a name")
}

func TestYAMLSpecDescriptionWinsOverMetadata(t *testing.T) {
	base := "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata:\n  name: t\n  description: from metadata\nspec:\n"
	if p := ylMustLoad(t, base+"  description: from spec\n"); p.Description != "from spec" {
		t.Errorf("description = %q", p.Description)
	}
	if p := ylMustLoad(t, base); p.Description != "from metadata" {
		t.Errorf("description = %q", p.Description)
	}
}

func TestYAMLPipelineConfigAndRegistry(t *testing.T) {
	p := ylMustLoad(t, ylPipeline("  component_registry: ghcr.io/acme\n  config:\n    network: testnet\n    batch: 100\n  sources:\n    - id: s\n      type: src@v2\n"))
	if !reflect.DeepEqual(p.Config, map[string]string{"network": "testnet", "batch": "100"}) {
		t.Errorf("config = %v", p.Config)
	}
	if img := ylComp(t, p, "source.s").Image; img != "ghcr.io/acme/src:v2" {
		t.Errorf("image = %q", img)
	}
}

func TestYAMLTypeThatContradictsItsListIsAWarning(t *testing.T) {
	src := ylPipeline("  sources:\n    - id: s\n      type: sink\n      image: x\n")
	p, diags := ylLoad(t, src)
	ylWantDiag(t, diags, ylAt(t, src, "sink\n")+": warning: Type does not match list: source.s: type says sink, but the component is listed under sources, which makes it a source")
	if p.Components[0].Kind != KindSource {
		t.Errorf("kind = %s", p.Components[0].Kind)
	}
}

func TestYAMLHeaderIsChecked(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"apiVersion: flowctl.withobsrvr.com/v1\nkind: Pipeline\nmetadata: {name: t}\nspec: {}\n",
			`test.yaml:1:13: error: Unsupported apiVersion: apiVersion "flowctl.withobsrvr.com/v1" is not supported; flowctl reads apiVersion: flowctl/v1`},
		{"apiVersion: flowctl/v1\nkind: Deployment\nmetadata: {name: t}\nspec: {}\n",
			`test.yaml:2:7: error: Unsupported kind: kind "Deployment" is not supported; a pipeline file says kind: Pipeline`},
		{"kind: Pipeline\nmetadata: {name: t}\nspec: {}\n",
			`test.yaml:1:1: error: Missing apiVersion: a pipeline file starts with apiVersion: flowctl/v1`},
		{"apiVersion: flowctl/v1\nkind: Pipeline\nspec: {}\n",
			`test.yaml:1:1: error: Missing metadata: a pipeline file needs metadata with the pipeline's name`},
		{"apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {namespace: x}\nspec: {}\n",
			`test.yaml:3:11: error: Missing pipeline name: a pipeline needs a name`},
	} {
		_, diags := ylLoad(t, tc.src)
		ylWantDiag(t, diags, tc.want)
	}
}

func TestYAMLDocumentsThatAreNotPipelines(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
		pipeline        bool
	}{
		{"empty", "", "error: Empty pipeline file", false},
		{"comment only", "# nothing\n", "error: Empty pipeline file", false},
		{"null document", "---\n", "error: Empty pipeline file", false},
		{"scalar", "apiVersion\n", "test.yaml:1:1: error: Not a pipeline: a pipeline file is a map with apiVersion, kind, metadata and spec; this document is string \"apiVersion\"", false},
		{"list", "- apiVersion: flowctl/v1\n", "test.yaml:1:1: error: Not a pipeline: a pipeline file is a map with apiVersion, kind, metadata and spec; this document is a list", false},
		{"syntax", "apiVersion: flowctl/v1\nkind: [Pipeline\n", "test.yaml:2:1: error: Invalid YAML: did not find expected ',' or ']'", false},
		{"bad indentation", "apiVersion: flowctl/v1\nmetadata:\n  name: x\n labels: {}\n", "test.yaml:4:1: error: Invalid YAML: did not find expected key", false},
		{"mapping in scalar", "apiVersion: flowctl/v1\nkind: Pipeline: x\n", "test.yaml:2:1: error: Invalid YAML: mapping values are not allowed in this context", false},
		{"unknown anchor", "apiVersion: flowctl/v1\nkind: *kind\n", "test.yaml:2:1: error: Invalid YAML: unknown anchor 'kind' referenced", false},
		{"tab", "apiVersion: flowctl/v1\n\tkind: Pipeline\n", "test.yaml:2:1: error: Invalid YAML: found a tab character that violates indentation", false},
		{"tab on line 1", "\tapiVersion: flowctl/v1\n", "test.yaml:1:1: error: Invalid YAML: found character that cannot start any token", false},
		{"second document", ylPipeline("") + "---\nkind: Other\n", "test.yaml:7:1: warning: Extra YAML document: only the first document of a pipeline file is read; this one and any after it are ignored", true},
		{"broken second document", ylPipeline("") + "---\nkind: [\n", "warning: Extra YAML document: only the first document of a pipeline file is read; what follows it is ignored (and is not valid YAML: ", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, diags := ylLoad(t, tc.src)
			if (p != nil) != tc.pipeline {
				t.Errorf("pipeline = %v, want one: %v", p, tc.pipeline)
			}
			ylWantDiag(t, diags, tc.want)
			if !tc.pipeline && !diags.HasErrors() {
				t.Error("no error")
			}
		})
	}
}

func TestYAMLAnchorsAndMergeKeysAreFollowed(t *testing.T) {
	p := ylMustLoad(t, ylPipeline(`  sources:
    - &base
      id: a
      image: shared:latest
      env: &env
        NETWORK: testnet
  sinks:
    - <<: *base
      id: b
      inputs: [a]
      env:
        <<: *env
        EXTRA: "1"
`))
	b := ylComp(t, p, "sink.b")
	if b.Image != "shared:latest" || b.Env["NETWORK"].Value != "testnet" || b.Env["EXTRA"].Value != "1" {
		t.Errorf("b = image %q env %v", b.Image, b.Env)
	}
}

func TestYAMLHostileDocumentsAreRejectedWithoutHanging(t *testing.T) {
	bomb := "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 1; i < 9; i++ {
		bomb += fmt.Sprintf("a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"self-referencing anchor", ylPipeline("  config: &c\n    self: *c\n"),
			"test.yaml:8:11: error: Recursive alias: alias *c refers to the anchor &c, which contains the alias itself"},
		{"self-merging anchor", ylPipeline("  sources:\n    - &s\n      id: s\n      image: x\n      <<: *s\n"),
			"test.yaml:11:11: error: Recursive alias: alias *s refers to the anchor &s, which contains the alias itself"},
		{"billion laughs in config", strings.Replace(ylPipeline("  config:\n    bomb: *a8\n"), "spec:\n", "spec:\n  x-anchors:\n"+ylIndent(bomb, "    "), 1),
			"error: Document too complex: with its aliases expanded, the document holds more than 262144 values by here; no pipeline needs that"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, diags := ylLoad(t, tc.src)
			if p == nil {
				t.Fatal("no pipeline")
			}
			_ = p.CanonicalJSON()
			ylWantDiag(t, diags, tc.want)
		})
	}
}

// ylIndent prefixes every line of s.
func ylIndent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

func TestYAMLRecordsRangesValidateUses(t *testing.T) {
	src := ylPipeline(`  sources:
    - id: s
      type: t@v1
      image: x
      command: [a]
      args: [b]
      executor: docker
      env: {A: "1"}
      config: {from_config: 2}
      ports: [{containerPort: 80, hostPort: 8080, protocol: tcp}]
      volumes: [{host_path: /a, container_path: /b}]
      health: {http: /h, port: 1, exec: [x], interval: 1s, timeout: 1s, start_period: 1s, failure_threshold: 1, success_threshold: 1}
      restart: {policy: always, max_retries: 1, backoff: {initial: 1s, max: 2s, multiplier: 2}}
      stop_timeout: 1s
      replicas: 1
      resources: {limits: {cpu: 1, memory: 1Mi}, requests: {cpu: 1, memory: 1Mi}}
  sinks:
    - id: k
      image: x
      inputs: [s]
      depends_on: [s]
`)
	p, _ := ylLoad(t, src)
	s := ylComp(t, p, "source.s")
	for _, key := range []string{"id", "type", "image", "command", "args", "executor", "env", "env.A", "env.FROM_CONFIG",
		"ports.0.container_port", "ports.0.host_port", "ports.0.protocol", "volumes.0.host_path", "volumes.0.container_path",
		"health", "health.port", "health.exec", "health.interval", "health.timeout", "health.start_period",
		"health.failure_threshold", "health.success_threshold", "restart.policy", "restart.max_retries",
		"restart.backoff.initial", "restart.backoff.max", "restart.backoff.multiplier", "stop_timeout", "replicas",
		"resources.cpu", "resources.memory", "resources.cpu_request", "resources.memory_request"} {
		r, ok := s.Ranges[key]
		if !ok || r.Filename != "test.yaml" || r.Start.Line < 8 {
			t.Errorf("source.s: range %q = %v, %v", key, r, ok)
		}
	}
	k := ylComp(t, p, "sink.k")
	for _, key := range []string{"inputs", "inputs.0", "depends_on", "depends_on.0"} {
		if r, ok := k.Ranges[key]; !ok || r.Start.Line != strings.Count(src[:strings.Index(src, "  "+strings.SplitN(key, ".", 2)[0]+": [s]")], "\n")+1 {
			t.Errorf("sink.k: range %q = %v, %v", key, r, ok)
		}
	}
	if r := s.Range("env.FROM_CONFIG"); fmt.Sprintf("test.yaml:%d:%d", r.Start.Line, r.Start.Column) != ylAt(t, src, "2}") {
		t.Errorf("env.FROM_CONFIG at %v", r)
	}
	// Byte offsets and ends are exact for scalars written on one line.
	r := s.Range("image")
	if got := src[r.Start.Byte:r.End.Byte]; got != "x" || r.End.Column != r.Start.Column+1 {
		t.Errorf("image range covers %q (%v)", got, r)
	}
}

// TestYAMLFilesMatchGoldenCanonicalJSON loads every testdata/yaml file,
// which must load without errors, and pins the model it becomes: NAME.json
// holds its warnings and its canonical JSON, indented for review. Run with
// -update to rewrite, then read the changes.
func TestYAMLFilesMatchGoldenCanonicalJSON(t *testing.T) {
	files, err := filepath.Glob("testdata/yaml/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in testdata/yaml (%v)", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p, diags := Load(path, LoadOptions{Environ: []string{}})
			if diags.HasErrors() || p == nil {
				t.Fatalf("%s does not load:\n%s", path, FormatDiagnostics(diags))
			}
			var buf bytes.Buffer
			buf.WriteString(FormatDiagnostics(diags))
			if err := json.Indent(&buf, p.CanonicalJSON(), "", "  "); err != nil {
				t.Fatal(err)
			}
			buf.WriteByte('\n')
			golden.Check(t, strings.TrimSuffix(path, ".yaml")+".json", buf.Bytes())
		})
	}
}

// TestYAMLAndHCLThatSayTheSameThingCanonicaliseIdentically holds the promise
// of docs/pipeline-reference.md: YAML and HCL files that say the same thing
// produce the same canonical JSON, hence the same spec hashes and plans.
// YAML cannot mark a value sensitive, so sensitivity is left out of the
// comparison.
func TestYAMLAndHCLThatSayTheSameThingCanonicaliseIdentically(t *testing.T) {
	for _, name := range []string{"design", "full"} {
		t.Run(name, func(t *testing.T) {
			yp, ydiags := Load("testdata/yaml/"+name+".yaml", LoadOptions{Environ: []string{}})
			hp, hdiags := Load("testdata/hcl/"+name+".hcl", LoadOptions{Environ: []string{}})
			if ydiags.HasErrors() || hdiags.HasErrors() || yp == nil || hp == nil {
				t.Fatalf("load errors:\n%s%s", FormatDiagnostics(ydiags), FormatDiagnostics(hdiags))
			}
			for _, c := range hp.Components {
				for k, v := range c.Env {
					v.Sensitive = false
					c.Env[k] = v
				}
			}
			if y, h := yp.CanonicalJSON(), hp.CanonicalJSON(); !bytes.Equal(y, h) {
				t.Errorf("canonical JSON differs\nyaml: %s\nhcl:  %s", y, h)
			}
		})
	}
}

func TestYAMLHealthHTTPMayBeAFullURL(t *testing.T) {
	p := ylMustLoad(t, ylPipeline("  sources:\n    - id: s\n      image: x\n      health: {http: \"http://localhost:8088/ready\", interval: 3s}\n"))
	h := ylComp(t, p, "source.s").Health
	if h.URL != "http://localhost:8088/ready" || h.Path != "/ready" || h.Port != 8088 || h.Interval != Duration(3e9) {
		t.Errorf("health = %+v", *h)
	}
}
