package config

import (
	"bytes"
	"testing"
)

const selfHCL = `pipeline "ports" {
  executor = "process"
}

source "sdk" {
  command       = ["./sdk-source"]
  auth          = "token"
  ready_timeout = "30s"
  env = {
    PORT     = ":${self.port}"
    HEALTH   = "http://127.0.0.1:${self.health_port}/health"
    UPSTREAM = "${self.address}"
  }
}

processor "fixed" {
  command     = ["./sdk-processor"]
  inputs      = [source.sdk]
  fixed_ports = { PORT = 50052, HEALTH_PORT = 8088 }
}
`

const selfYAML = `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: ports
spec:
  executor: process
  sources:
    - id: sdk
      command: ["./sdk-source"]
      auth: token
      ready_timeout: 30s
      env:
        PORT: ":${self.port}"
        HEALTH: "http://127.0.0.1:${self.health_port}/health"
        UPSTREAM: "${self.address}"
  processors:
    - id: fixed
      command: ["./sdk-processor"]
      inputs: [sdk]
      fixed_ports:
        PORT: 50052
        HEALTH_PORT: 8088
`

func TestSelfReferencesFixedPortsAuthAndReadyTimeoutLoadAlikeFromHCLAndYAML(t *testing.T) {
	h := mustLoadHCL(t, selfHCL, LoadOptions{})
	y, diags := LoadBytes([]byte(selfYAML), "p.yaml", LoadOptions{Environ: []string{}})
	if len(diags) > 0 {
		t.Fatalf("yaml: %s", FormatDiagnostics(diags))
	}
	if !bytes.Equal(h.CanonicalJSON(), y.CanonicalJSON()) {
		t.Fatalf("HCL and YAML differ:\n%s\n%s", h.CanonicalJSON(), y.CanonicalJSON())
	}
	sdk := h.Component("source.sdk")
	if v := sdk.Env["PORT"]; v.Value != ":${self.port}" || !v.Deferred {
		t.Fatalf("PORT = %+v", v)
	}
	if sdk.Auth != AuthToken || sdk.ReadyTimeout.String() != "30s" {
		t.Fatalf("auth %q ready_timeout %s", sdk.Auth, sdk.ReadyTimeout)
	}
	// A reference to itself is no edge of the DAG.
	if up := sdk.Upstreams(); len(up) != 0 {
		t.Fatalf("upstreams %v", up)
	}
	fixed := h.Component("processor.fixed")
	if fixed.FixedPorts["PORT"] != 50052 || fixed.FixedPorts["HEALTH_PORT"] != 8088 {
		t.Fatalf("fixed ports %v", fixed.FixedPorts)
	}
	for _, format := range []string{"hcl", "yaml"} {
		out, err := Convert(h, format, "p."+format)
		if err != nil {
			t.Fatal(err)
		}
		back, diags := LoadBytes(out, "p."+format, LoadOptions{Environ: []string{}})
		if len(diags) > 0 {
			t.Fatalf("%s: %s\n%s", format, FormatDiagnostics(diags), out)
		}
		if !bytes.Equal(back.CanonicalJSON(), h.CanonicalJSON()) {
			t.Fatalf("%s round trip differs:\n%s", format, out)
		}
	}
	if got := ResolveRefs(sdk.Env["PORT"].Value, func(r Ref) string {
		if !r.Self() || r.Attr != PortAttr {
			t.Fatalf("ref %+v", r)
		}
		return "41000"
	}); got != ":41000" {
		t.Fatalf("resolved %q", got)
	}
}

func TestTwoProcessComponentsWithOneFixedPortAreAnError(t *testing.T) {
	_, diags := loadHCLString(t, `pipeline "clash" {
  executor = "process"
}

source "a" {
  command     = ["./a"]
  fixed_ports = { PORT = 50052 }
}

sink "b" {
  command     = ["./b"]
  inputs      = [source.a]
  fixed_ports = { HEALTH_PORT = 50052 }
}
`, LoadOptions{})
	wantDiag(t, diags, "test.hcl:13:", "Port used twice", "sink.b: HEALTH_PORT 50052 is also the PORT of source.a")
}

func TestFixedPortOnDockerDoesNotClash(t *testing.T) {
	mustLoadHCL(t, `pipeline "noclash" {
  executor = "docker"
}

source "a" {
  image       = "a:1"
  fixed_ports = { PORT = 50052 }
}

sink "b" {
  image       = "b:1"
  inputs      = [source.a]
  fixed_ports = { PORT = 50052 }
}
`, LoadOptions{})
}

func TestInvalidRunSettingsNameTheirPlace(t *testing.T) {
	_, diags := loadHCLString(t, `pipeline "bad" {
  executor = "process"
}

source "a" {
  command     = ["./a"]
  auth        = "sometimes"
  fixed_ports = { PORT = 70000, GRPC = 1 }
  env         = { X = "${self.nope}" }
}
`, LoadOptions{})
	wantDiag(t, diags, `test.hcl:7:17: error: Invalid auth mode: source.a: auth "sometimes"`,
		`Invalid fixed port: source.a: fixed_ports PORT = "70000"`,
		`Unknown fixed port: source.a: fixed_ports GRPC`,
		`self has no attribute "nope"`)
}
