package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const nomadHCL = `
variable "nomad_token" {
  sensitive = true
  default   = "s3cr3t-token-value"
}

pipeline "ttp" {
  executor = "nomad"
  nomad {
    address     = "https://nomad.example.com:4646/"
    region      = "eu"
    namespace   = "stellar"
    datacenters = ["eu-b", "eu-a", "eu-b"]
    token       = var.nomad_token
  }
}

source "ledger" {
  image = "withobsrvr/stellar-live-source:latest"
}
`

const nomadYAML = `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: ttp
spec:
  driver: nomad
  nomad:
    address: https://nomad.example.com:4646
    region: eu
    namespace: stellar
    datacenters: [eu-a, eu-b]
  sources:
    - id: ledger
      image: withobsrvr/stellar-live-source:latest
`

func TestNomadBlockLoadsTheSameFromHCLAndYAML(t *testing.T) {
	h := mustLoadHCL(t, nomadHCL, LoadOptions{})
	y := ylMustLoad(t, nomadYAML)
	want := &Nomad{Address: "https://nomad.example.com:4646", Region: "eu", Namespace: "stellar", Datacenters: []string{"eu-a", "eu-b"}}
	gotY := *y.Nomad
	if !reflect.DeepEqual(&gotY, want) {
		t.Errorf("yaml: nomad = %+v, want %+v", gotY, *want)
	}
	gotH := *h.Nomad
	if gotH.Token != "s3cr3t-token-value" {
		t.Errorf("hcl: token = %q, want the variable's value", gotH.Token)
	}
	gotH.Token = ""
	if !reflect.DeepEqual(&gotH, want) {
		t.Errorf("hcl: nomad = %+v, want %+v", gotH, *want)
	}
	if string(h.CanonicalJSON()) != string(y.CanonicalJSON()) || h.Hash() != y.Hash() {
		t.Errorf("canonical JSON differs:\nhcl:  %s\nyaml: %s", h.CanonicalJSON(), y.CanonicalJSON())
	}
}

func TestNomadTokenIsNeverInTheCanonicalFormOrWrittenFiles(t *testing.T) {
	p := mustLoadHCL(t, nomadHCL, LoadOptions{})
	for what, b := range map[string][]byte{
		"canonical JSON": p.CanonicalJSON(),
		"HCL written":    WriteHCL(p),
		"YAML written":   WriteYAML(p),
	} {
		if strings.Contains(string(b), "s3cr3t") {
			t.Errorf("%s holds the token:\n%s", what, b)
		}
	}
	// The token does not move the hash: it is not part of what is run.
	other := mustLoadHCL(t, strings.Replace(nomadHCL, "s3cr3t-token-value", "another-token", 1), LoadOptions{})
	if p.Hash() != other.Hash() {
		t.Error("the token changes the pipeline hash")
	}
	if !strings.Contains(string(WriteHCL(p)), `namespace   = "stellar"`) {
		t.Errorf("HCL written lacks the nomad block:\n%s", WriteHCL(p))
	}
}

func TestNomadTokenWrittenInTheFileIsAWarningThatDoesNotShowIt(t *testing.T) {
	src := strings.Replace(nomadHCL, "token       = var.nomad_token", `token       = "plain-secret-token"`, 1)
	p, diags := loadHCLString(t, src, LoadOptions{})
	if diags.HasErrors() {
		t.Fatalf("unexpected errors:\n%s", FormatDiagnostics(diags))
	}
	text := FormatDiagnostics(diags)
	if !strings.Contains(text, "Nomad token in the file") || !strings.Contains(text, "test.hcl:14:19: warning") {
		t.Errorf("want a warning at the token, got:\n%s", text)
	}
	if strings.Contains(text, "plain-secret-token") {
		t.Errorf("the warning shows the token:\n%s", text)
	}
	if p.Nomad.Token != "plain-secret-token" {
		t.Errorf("token = %q", p.Nomad.Token)
	}

	ysrc := strings.Replace(nomadYAML, "    region: eu\n", "    region: eu\n    token: plain-secret-token\n", 1)
	_, diags = ylLoad(t, ysrc)
	text = FormatDiagnostics(diags)
	ylWantDiag(t, diags, ylAt(t, ysrc, "plain-secret-token")+": warning: Nomad token in the file")
	if strings.Contains(text, "plain-secret-token") {
		t.Errorf("the warning shows the token:\n%s", text)
	}
}

func TestNomadBlockProblemsAreReportedAtTheirValue(t *testing.T) {
	src := `pipeline "p" {
  executor = "nomad"
  nomad {
    address   = "nomad.example.com:4646"
    namespace = "not a namespace"
    token     = ["not-a-string"]
  }
}

source "s" {
  image = "x"
}
`
	_, diags := loadHCLString(t, src, LoadOptions{})
	wantDiag(t, diags,
		"test.hcl:4:17: error: Invalid Nomad address",
		"test.hcl:5:17: error: Invalid Nomad namespace",
		"test.hcl:6:17: error: Incorrect attribute value type",
	)
	if strings.Contains(FormatDiagnostics(diags), "not-a-string") {
		t.Errorf("a diagnostic shows the token:\n%s", FormatDiagnostics(diags))
	}

	ysrc := ylPipeline("  nomad:\n    address: ftp://nomad\n    datacenters: [\"\"]\n    token: [a, b]\n  sources:\n    - id: s\n      image: x\n      executor: nomad\n")
	_, diags = ylLoad(t, ysrc)
	ylWantDiag(t, diags, ylAt(t, ysrc, "ftp://")+": error: Invalid Nomad address")
	ylWantDiag(t, diags, ylAt(t, ysrc, `[""]`)+": error: Invalid Nomad datacenter")
	ylWantDiag(t, diags, ylAt(t, ysrc, "[a, b]")+": error: Wrong type")
}

func TestNomadBlockTwiceIsAnError(t *testing.T) {
	src := "pipeline \"p\" {\n  executor = \"nomad\"\n  nomad {}\n  nomad {}\n}\nsource \"s\" {\n  image = \"x\"\n}\n"
	_, diags := loadHCLString(t, src, LoadOptions{})
	wantDiag(t, diags, "test.hcl:4:3: error: Duplicate nomad block")
}

func TestNomadBlockWithoutNomadComponentsIsAWarning(t *testing.T) {
	src := "pipeline \"p\" {\n  nomad {\n    region = \"eu\"\n  }\n}\nsource \"s\" {\n  command = [\"./s\"]\n}\n"
	p, diags := loadHCLString(t, src, LoadOptions{})
	if diags.HasErrors() || p == nil {
		t.Fatalf("unexpected errors:\n%s", FormatDiagnostics(diags))
	}
	if text := FormatDiagnostics(diags); !strings.Contains(text, "test.hcl:2:3: warning: Unused nomad block") {
		t.Errorf("want a warning at the block, got:\n%s", text)
	}
}

func TestEmptyNomadBlockIsNoBlock(t *testing.T) {
	h := mustLoadHCL(t, "pipeline \"p\" {\n  executor = \"nomad\"\n  nomad {}\n}\nsource \"s\" {\n  image = \"x\"\n}\n", LoadOptions{})
	if h.Nomad != nil {
		t.Errorf("nomad = %+v, want nil", *h.Nomad)
	}
}

func TestNomadComponentsRefuseWhatNomadCannotRun(t *testing.T) {
	src := `pipeline "p" {
  executor = "nomad"
}

source "probe" {
  image = "x"
  health {
    exec     = ["true"]
    interval = "500ms"
  }
}

source "raw" {
  command = ["./bin/raw"]
  volume {
    host_path      = "/data"
    container_path = "/data"
  }
}

source "rel" {
  image = "x"
  volume {
    host_path      = "data"
    container_path = "/data"
  }
}
`
	_, diags := loadHCLString(t, src, LoadOptions{})
	wantDiag(t, diags,
		"test.hcl:8:16: error: Exec probe on Nomad",
		"test.hcl:9:16: error: Health interval too short for Nomad",
		"source.raw: a command runs on the Nomad node with the raw_exec driver",
		"test.hcl:24:22: error: Relative volume on Nomad",
	)
}

func TestNomadComponentOnAnotherExecutorIsNotCheckedForNomad(t *testing.T) {
	src := "pipeline \"p\" {}\nsource \"s\" {\n  command = [\"./s\"]\n  health {\n    exec = [\"true\"]\n    interval = \"500ms\"\n  }\n}\n"
	mustLoadHCL(t, src, LoadOptions{})
}

func ExampleNomad() {
	p, _ := LoadBytes([]byte(nomadYAML), "pipeline.yaml", LoadOptions{Environ: []string{}})
	js := string(p.CanonicalJSON())
	start := strings.Index(js, `"nomad":{`)
	fmt.Println(js[start : start+strings.Index(js[start:], "}")+1])
	// Output: "nomad":{"address":"https://nomad.example.com:4646","region":"eu","namespace":"stellar","datacenters":["eu-a","eu-b"]}
}
