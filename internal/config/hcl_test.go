package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// loadHCLString loads src through LoadBytes as test.hcl, with an empty
// environment unless opts gives one.
func loadHCLString(t *testing.T, src string, opts LoadOptions) (*Pipeline, hcl.Diagnostics) {
	t.Helper()
	if opts.Environ == nil {
		opts.Environ = []string{}
	}
	return LoadBytes([]byte(src), "test.hcl", opts)
}

// mustLoadHCL loads src and fails the test on any diagnostic.
func mustLoadHCL(t *testing.T, src string, opts LoadOptions) *Pipeline {
	t.Helper()
	p, diags := loadHCLString(t, src, opts)
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics:\n%s", FormatDiagnostics(diags))
	}
	if p == nil {
		t.Fatal("nil pipeline")
	}
	return p
}

// wantDiag fails unless the formatted diagnostics contain every fragment.
func wantDiag(t *testing.T, diags hcl.Diagnostics, fragments ...string) {
	t.Helper()
	text := FormatDiagnostics(diags)
	if !diags.HasErrors() {
		t.Fatalf("want errors containing %q, got none:\n%s", fragments, text)
	}
	for _, f := range fragments {
		if !strings.Contains(text, f) {
			t.Errorf("diagnostics lack %q:\n%s", f, text)
		}
	}
}

// envOf returns the env value NAME of the component at addr.
func envOf(t *testing.T, p *Pipeline, addr, name string) EnvValue {
	t.Helper()
	c := p.Component(addr)
	if c == nil {
		t.Fatalf("no component %s", addr)
	}
	v, ok := c.Env[name]
	if !ok {
		t.Fatalf("%s has no env %s; env is %v", addr, name, c.Env)
	}
	return v
}

// withSource wraps declarations and a source "app" whose env is envBody.
func withSource(decls, envBody string) string {
	return `pipeline "p" {}
` + decls + `
source "app" {
  command = ["./app"]
  env = {
` + envBody + `
  }
}
`
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHCLLoadsDesignExample(t *testing.T) {
	src := `
pipeline "ttp" {
  executor = "docker"            # default for every component; a component may override
}

variable "network" { default = "testnet" }

source "ledger" {
  image = "withobsrvr/stellar-live-source:latest"
  env   = { STELLAR_NETWORK = var.network }
  health {
    http = "/health"
    port = 8088
  }
  restart {
    policy      = "on-failure"
    max_retries = 5
  }
}

processor "ttp" {
  image  = "withobsrvr/ttp-processor:latest"
  inputs = [source.ledger]
}

sink "consumer" {
  command  = ["./bin/consumer"]
  executor = "process"
  inputs   = [processor.ttp]
}
`
	p := mustLoadHCL(t, src, LoadOptions{})
	if p.Name != "ttp" || p.Executor != "docker" || p.Format != FormatHCL {
		t.Errorf("pipeline = %q executor %q format %q", p.Name, p.Executor, p.Format)
	}
	var addrs []string
	for _, c := range p.Components {
		addrs = append(addrs, c.Address())
	}
	if want := []string{"source.ledger", "processor.ttp", "sink.consumer"}; !reflect.DeepEqual(addrs, want) {
		t.Errorf("components = %v, want %v", addrs, want)
	}
	ledger := p.Component("source.ledger")
	if ledger.Executor != "docker" || ledger.Env["STELLAR_NETWORK"].Value != "testnet" {
		t.Errorf("ledger = %+v", ledger)
	}
	if h := ledger.Health; h == nil || h.Type != HealthHTTP || h.Path != "/health" || h.Port != 8088 {
		t.Errorf("health = %+v", ledger.Health)
	}
	if r := ledger.Restart; r.Policy != RestartOnFailure || r.MaxRetries != 5 {
		t.Errorf("restart = %+v", r)
	}
	if got := p.Component("sink.consumer"); got.Executor != "process" || !reflect.DeepEqual(got.Inputs, []string{"processor.ttp"}) {
		t.Errorf("consumer = %+v", got)
	}
	if len(p.Variables) != 1 || p.Variables[0].Name != "network" || p.Variables[0].Value != `"testnet"` {
		t.Errorf("variables = %+v", p.Variables)
	}
}

func TestHCLLoaderFillsNoDefaults(t *testing.T) {
	p, diags := loadHCL([]byte(`
pipeline "p" {}
source "a" {
  command = ["./a"]
  restart {
    max_retries = 0
    backoff {
      initial = "0s"
    }
  }
}
`), "test.hcl", LoadOptions{Environ: []string{}})
	if len(diags) > 0 {
		t.Fatal(FormatDiagnostics(diags))
	}
	c := p.Components[0]
	if p.Executor != "" || c.Executor != "" || c.Replicas != 0 || c.StopTimeout != 0 || c.Restart.Policy != "" {
		t.Errorf("loader filled defaults: pipeline executor %q, component %+v", p.Executor, c)
	}
	// Explicit zeros survive normalisation.
	normalize(p)
	if c.Restart.MaxRetries != 0 || c.Restart.Backoff.Initial != 0 {
		t.Errorf("explicit zero max_retries/initial lost: %+v", c.Restart)
	}
}

func TestHCLCommandLineVarBeatsVarFileBeatsEnvBeatsDefault(t *testing.T) {
	src := withSource(`variable "network" { default = "default" }`, `NETWORK = var.network`)
	hclFile := writeFile(t, "vars.flowvars", `network = "file"`)
	jsonFile := writeFile(t, "vars.json", `{"network": "json-file"}`)
	env := []string{"FLOWCTL_VAR_network=env"}
	tests := []struct {
		name    string
		environ []string
		vars    []VarArg
		want    string
	}{
		{"default only", nil, nil, "default"},
		{"environment beats default", env, nil, "env"},
		{"var-file beats environment", env, []VarArg{{File: hclFile}}, "file"},
		{"json var-file beats environment", env, []VarArg{{File: jsonFile}}, "json-file"},
		{"-var beats var-file given before it", env, []VarArg{{File: hclFile}, {Name: "network", Value: "cli"}}, "cli"},
		{"var-file given after -var beats it", env, []VarArg{{Name: "network", Value: "cli"}, {File: hclFile}}, "file"},
		{"later -var wins", nil, []VarArg{{Name: "network", Value: "one"}, {Name: "network", Value: "two"}}, "two"},
		{"unrelated environment ignored", []string{"OTHER=x", "FLOWCTL_VAR_unknown=y", "FLOWCTL_VAR_NETWORK=z"}, nil, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			environ := tt.environ
			if environ == nil {
				environ = []string{}
			}
			p := mustLoadHCL(t, src, LoadOptions{Environ: environ, Vars: tt.vars})
			if got := envOf(t, p, "source.app", "NETWORK").Value; got != tt.want {
				t.Errorf("NETWORK = %q, want %q", got, tt.want)
			}
			if got := p.Variables[0].Value; got != `"`+tt.want+`"` {
				t.Errorf("Variables[0].Value = %s, want %q", got, tt.want)
			}
		})
	}
}

func TestHCLNilEnvironMeansProcessEnvironment(t *testing.T) {
	t.Setenv("FLOWCTL_VAR_network", "from-process")
	src := withSource(`variable "network" { default = "default" }`, `NETWORK = var.network`)
	p, diags := LoadBytes([]byte(src), "test.hcl", LoadOptions{})
	if len(diags) > 0 {
		t.Fatal(FormatDiagnostics(diags))
	}
	if got := envOf(t, p, "source.app", "NETWORK").Value; got != "from-process" {
		t.Errorf("NETWORK = %q", got)
	}
}

func TestHCLUndeclaredVariableValues(t *testing.T) {
	src := withSource(`variable "network" { default = "x" }`, `NETWORK = var.network`)
	t.Run("-var is an error naming the variable", func(t *testing.T) {
		_, diags := loadHCLString(t, src, LoadOptions{Vars: []VarArg{{Name: "netwrk", Value: "y"}}})
		wantDiag(t, diags, "Undeclared variable", `-var sets a variable named "netwrk"`, "Did you mean var.network?")
	})
	t.Run("var-file is an error at its position", func(t *testing.T) {
		file := writeFile(t, "v.hcl", "network = \"a\"\nregion = \"b\"\n")
		_, diags := loadHCLString(t, src, LoadOptions{Vars: []VarArg{{File: file}}})
		wantDiag(t, diags, file+":2:1: error: Undeclared variable", `sets a variable named "region"`)
	})
	t.Run("environment is ignored", func(t *testing.T) {
		mustLoadHCL(t, src, LoadOptions{Environ: []string{"FLOWCTL_VAR_region=b"}})
	})
	t.Run("missing var-file", func(t *testing.T) {
		_, diags := loadHCLString(t, src, LoadOptions{Vars: []VarArg{{File: filepath.Join(t.TempDir(), "nope.hcl")}}})
		wantDiag(t, diags, "Cannot read variables file", "nope.hcl")
	})
	t.Run("var-file syntax error", func(t *testing.T) {
		file := writeFile(t, "bad.hcl", "network = \n")
		_, diags := loadHCLString(t, src, LoadOptions{Vars: []VarArg{{File: file}}})
		wantDiag(t, diags, file+":1:")
	})
}

func TestHCLVariableTypeConversion(t *testing.T) {
	decls := `
variable "replicas" { type = number }
variable "cmd" { type = list(string) }
variable "debug" { type = bool }
variable "settings" {
  type = object({
    level = string
    port  = optional(number, 9000)
  })
}
variable "anything" {}
`
	src := `pipeline "p" {}
` + decls + `
source "app" {
  command  = var.cmd
  replicas = var.replicas
  env = {
    DEBUG    = var.debug
    LEVEL    = var.settings.level
    PORT     = var.settings.port
    ANYTHING = var.anything
  }
}
`
	t.Run("values from -var and the environment", func(t *testing.T) {
		p := mustLoadHCL(t, src, LoadOptions{
			Environ: []string{"FLOWCTL_VAR_replicas=3", `FLOWCTL_VAR_cmd=["./app", "--fast"]`},
			Vars: []VarArg{
				{Name: "debug", Value: "true"},
				{Name: "settings", Value: `{ level = "info" }`},
				{Name: "anything", Value: `["raw", text]`},
			},
		})
		c := p.Component("source.app")
		if c.Replicas != 3 || !reflect.DeepEqual(c.Command, []string{"./app", "--fast"}) {
			t.Errorf("replicas %d command %q", c.Replicas, c.Command)
		}
		for name, want := range map[string]string{"DEBUG": "true", "LEVEL": "info", "PORT": "9000", "ANYTHING": `["raw", text]`} {
			if got := c.Env[name].Value; got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
	})
	t.Run("values from a var-file", func(t *testing.T) {
		file := writeFile(t, "v.json", `{"replicas": 2, "cmd": ["./x"], "debug": false, "settings": {"level": "warn", "port": 1}, "anything": 5}`)
		p := mustLoadHCL(t, src, LoadOptions{Vars: []VarArg{{File: file}}})
		c := p.Component("source.app")
		if c.Replicas != 2 || c.Env["PORT"].Value != "1" || c.Env["ANYTHING"].Value != "5" || c.Env["DEBUG"].Value != "false" {
			t.Errorf("component = %+v", c)
		}
	})
	tests := []struct {
		name  string
		vars  []VarArg
		wants []string
	}{
		{"number from text", []VarArg{{Name: "replicas", Value: "three"}},
			[]string{"test.hcl:3:1: error: Invalid value for variable", `the value for variable "replicas" from -var is not a valid number: a number is required`}},
		{"list from a non-list", []VarArg{{Name: "cmd", Value: `"./app"`}},
			[]string{`the value for variable "cmd" from -var is not a valid list(string): list of string required`}},
		{"list from bad syntax", []VarArg{{Name: "cmd", Value: `[`}},
			[]string{`the value for variable "cmd" from -var is not a valid HCL expression of type list(string): Missing expression; Expected the start of an expression, but found the end of the file.`}},
		{"object missing attribute", []VarArg{{Name: "settings", Value: `{ port = 1 }`}},
			[]string{`variable "settings" from -var is not a valid object`, `attribute "level" is required`}},
		{"bool", []VarArg{{Name: "debug", Value: "maybe"}},
			[]string{`the value for variable "debug" from -var is not a valid bool`}},
	}
	base := []VarArg{{Name: "replicas", Value: "1"}, {Name: "cmd", Value: `["x"]`}, {Name: "debug", Value: "true"},
		{Name: "settings", Value: `{ level = "x" }`}, {Name: "anything", Value: "x"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := loadHCLString(t, src, LoadOptions{Vars: append(append([]VarArg(nil), base...), tt.vars...)})
			wantDiag(t, diags, tt.wants...)
			n := 0
			for _, d := range diags {
				if strings.HasPrefix(d.Summary, "Invalid value for variable") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("want exactly one variable diagnostic, got %d:\n%s", n, FormatDiagnostics(diags))
			}
		})
	}
	t.Run("default of the wrong type", func(t *testing.T) {
		_, diags := loadHCLString(t, withSource(`variable "n" {
  type    = number
  default = "many"
}`, `N = var.n`), LoadOptions{Vars: []VarArg{{Name: "n", Value: "1"}}})
		wantDiag(t, diags, "test.hcl:4:13: error: Invalid value for variable", `the value for variable "n" from its default is not a valid number`)
	})
}

func TestHCLMissingRequiredVariable(t *testing.T) {
	_, diags := loadHCLString(t, withSource(`variable "token" {}`, `TOKEN = var.token`), LoadOptions{})
	wantDiag(t, diags, `test.hcl:2:1: error: No value for required variable: variable "token" has no default`, "FLOWCTL_VAR_token")
	if len(diags) != 1 {
		t.Errorf("want one diagnostic (the env value depending on it is not reported again):\n%s", FormatDiagnostics(diags))
	}
}

func TestHCLVariableValidation(t *testing.T) {
	decl := `variable "network" {
  default = "testnet"
  validation {
    condition     = contains(["testnet", "pubnet"], var.network)
    error_message = "network must be testnet or pubnet."
  }
  validation {
    condition     = length(var.network) < 10
    error_message = "network is too long."
  }
}`
	src := withSource(decl, `NETWORK = var.network`)
	tests := []struct {
		name  string
		value string
		wants []string
	}{
		{"passes", "pubnet", nil},
		{"fails the first rule", "devnet", []string{"test.hcl:5:21: error: Invalid value for variable", `variable "network": network must be testnet or pubnet.`}},
		{"fails both rules", "devnet-long-name", []string{"test.hcl:5:21:", "test.hcl:9:21:", "network is too long."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := loadHCLString(t, src, LoadOptions{Vars: []VarArg{{Name: "network", Value: tt.value}}})
			if tt.wants == nil {
				if len(diags) > 0 {
					t.Fatal(FormatDiagnostics(diags))
				}
				if got := envOf(t, p, "source.app", "NETWORK").Value; got != tt.value {
					t.Errorf("NETWORK = %q", got)
				}
				return
			}
			wantDiag(t, diags, tt.wants...)
		})
	}
	t.Run("condition may refer only to its variable", func(t *testing.T) {
		_, diags := loadHCLString(t, withSource(`variable "a" { default = 1 }
variable "b" {
  default = 2
  validation {
    condition     = var.b > var.a
    error_message = "b must exceed a."
  }
}`, `B = var.b`), LoadOptions{})
		wantDiag(t, diags, "test.hcl:6:29: error: Invalid reference in variable validation", `can refer only to var.b, not to var.a`)
	})
	t.Run("condition must be a bool", func(t *testing.T) {
		_, diags := loadHCLString(t, withSource(`variable "a" {
  default = "x"
  validation {
    condition     = var.a
    error_message = "no."
  }
}`, `A = var.a`), LoadOptions{})
		wantDiag(t, diags, "Invalid validation condition")
	})
}

func TestHCLSensitiveValuesAreMarkedAndNeverShown(t *testing.T) {
	const secret = "hunter2-very-secret"
	decls := `variable "token" {
  type      = string
  sensitive = true
  validation {
    condition     = length(var.token) > 3
    error_message = "token too short."
  }
}
variable "plain" { default = "visible" }
locals {
  shout = upper(var.token)
}
`
	src := `pipeline "p" {}
` + decls + `
source "app" {
  command = ["./app"]
  env = {
    TOKEN    = var.token
    DERIVED  = "Bearer ${upper(var.token)}"
    JOINED   = join(",", [var.plain, var.token])
    PLAIN    = var.plain
  }
  config = {
    api_key = var.token
    level   = "info"
  }
}
`
	p := mustLoadHCL(t, src, LoadOptions{Vars: []VarArg{{Name: "token", Value: secret}}})
	for name, want := range map[string]bool{"TOKEN": true, "DERIVED": true, "JOINED": true, "API_KEY": true, "PLAIN": false, "LEVEL": false} {
		if got := envOf(t, p, "source.app", name).Sensitive; got != want {
			t.Errorf("env %s sensitive = %v, want %v", name, got, want)
		}
	}
	if got := envOf(t, p, "source.app", "DERIVED").Value; got != "Bearer HUNTER2-VERY-SECRET" {
		t.Errorf("DERIVED = %q", got)
	}
	if v := p.Variables[0]; !v.Sensitive || v.Name != "token" {
		t.Errorf("variable = %+v", v)
	}

	bad := []struct {
		name string
		env  string
	}{
		{"wrong type", `replicas = var.token`},
		{"bad duration", `stop_timeout = var.token`},
		{"function error", `env = { X = tonumber(var.token) }`},
		{"derived function error", `env = { X = tonumber(upper(var.token)) }`},
		{"function error through a local", `env = { X = tonumber(local.shout) }`},
		{"derived value as a key", `env = { (upper(var.token)) = ["x"] }`},
		{"regex error", `env = { X = regex(var.token, "x") }`},
		{"list of secrets", `command = [var.token, {}]`},
		{"map value", `env = { X = { y = var.token } }`},
		{"quantity", `resources {
    cpu = var.token
  }`},
	}
	for _, tt := range bad {
		t.Run("diagnostics hide it: "+tt.name, func(t *testing.T) {
			src := `pipeline "p" {}
` + decls + `
source "app" {
  command = ["./app"]
  ` + tt.env + `
}
`
			_, diags := loadHCLString(t, src, LoadOptions{Vars: []VarArg{{Name: "token", Value: secret}}})
			if !diags.HasErrors() {
				t.Fatal("want an error")
			}
			text := FormatDiagnostics(diags)
			for _, leak := range []string{secret, strings.ToUpper(secret)} {
				if strings.Contains(text, leak) {
					t.Errorf("diagnostics show the secret:\n%s", text)
				}
			}
			for _, d := range diags {
				if d.EvalContext != nil || d.Expression != nil {
					t.Errorf("diagnostic keeps its evaluation context, which holds the secret: %s", FormatDiagnostic(d))
				}
			}
		})
	}
	t.Run("failing validation hides it", func(t *testing.T) {
		_, diags := loadHCLString(t, src, LoadOptions{Vars: []VarArg{{Name: "token", Value: "abc"}}})
		wantDiag(t, diags, "token too short.")
		if strings.Contains(FormatDiagnostics(diags), `"abc"`) {
			t.Errorf("diagnostics show the secret:\n%s", FormatDiagnostics(diags))
		}
	})
	t.Run("conversion error hides it", func(t *testing.T) {
		src := withSource(`variable "n" {
  type      = number
  sensitive = true
}`, `N = var.n`)
		_, diags := loadHCLString(t, src, LoadOptions{Vars: []VarArg{{Name: "n", Value: secret}}})
		wantDiag(t, diags, "Invalid value for variable")
		if strings.Contains(FormatDiagnostics(diags), secret) {
			t.Errorf("diagnostics show the secret:\n%s", FormatDiagnostics(diags))
		}
	})
}

func TestHCLLocalsReferToLocalsAndVariablesInAnyOrder(t *testing.T) {
	src := withSource(`
variable "network" { default = "testnet" }
locals {
  url = "${local.scheme}://${local.host}/${var.network}"
}
locals {
  host   = lower(local.name)
  scheme = "https"
  name   = "HORIZON"
}`, `URL = local.url`)
	p := mustLoadHCL(t, src, LoadOptions{})
	if got := envOf(t, p, "source.app", "URL").Value; got != "https://horizon/testnet" {
		t.Errorf("URL = %q", got)
	}

	tests := []struct {
		name, decls, env string
		wants            []string
	}{
		{"cycle", `locals {
  a = local.b
  b = "${local.c}x"
  c = local.a
}`, `A = local.a`, []string{"Cycle in local values", "local.a -> local.b -> local.c -> local.a"}},
		{"self reference", `locals {
  a = "${local.a}"
}`, `A = local.a`, []string{"test.hcl:3:3: error: Cycle in local values: local.a depends on itself: local.a -> local.a"}},
		{"undeclared local", `locals {
  name = "x"
}`, `A = local.nmae`, []string{`test.hcl:8:5: error: Reference to undeclared local value: a local value named "nmae" has not been declared. Did you mean local.name?`}},
		{"undeclared variable", `variable "network" { default = "x" }`, `A = "${var.netwrk}"`,
			[]string{`test.hcl:6:8: error: Reference to undeclared input variable: an input variable named "netwrk" has not been declared; add a variable "netwrk" block. Did you mean var.network?`}},
		{"duplicate local", `locals {
  a = 1
}
locals {
  a = 2
}`, `A = local.a`, []string{"test.hcl:6:3: error: Duplicate local value: local.a was already defined at test.hcl:3:3"}},
		{"unknown name", ``, `A = foo.bar`, []string{`Unknown name: there is nothing named "foo" here`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := loadHCLString(t, withSource(tt.decls, tt.env), LoadOptions{})
			wantDiag(t, diags, tt.wants...)
			if len(diags) != 1 {
				t.Errorf("want one diagnostic:\n%s", FormatDiagnostics(diags))
			}
		})
	}
}

func TestHCLFunctions(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`upper("a")`, "A"},
		{`lower("A")`, "a"},
		{`join("-", ["a", "b"])`, "a-b"},
		{`format("%s:%d", "h", 80)`, "h:80"},
		{`jsonencode({ b = 1, a = [true] })`, `{"a":[true],"b":1}`},
		{`jsondecode("{\"x\": 2}").x`, "2"},
		{`length("héllo")`, "5"},
		{`length([1, 2])`, "2"},
		{`length({ a = 1 })`, "1"},
		{`index(["a", "b"], "b")`, "1"},
		{`replace("a-b-c", "-", "_")`, "a_b_c"},
		{`replace("a1b22", "/[0-9]+/", "#")`, "a#b#"},
		{`try(local.m.missing, "fallback")`, "fallback"},
		{`can(local.m.missing)`, "false"},
		{`tostring(5)`, "5"},
		{`max(1, 7, 3)`, "7"},
		{`coalesce("", "b")`, "b"},
		{`join(",", sort(distinct(["b", "a", "b"])))`, "a,b"},
		{`join(",", [for s in split(",", "x,y") : upper(s)])`, "X,Y"},
		{`lookup({ a = "1" }, "b", "none")`, "none"},
		{`trimspace("  x ")`, "x"},
		{`substr("flowctl", 0, 4)`, "flow"},
		{`title("hello")`, "Hello"},
		{`join(",", keys(merge({ a = 1 }, { b = 2 })))`, "a,b"},
		{`element(["a", "b"], 3)`, "b"},
		{`jsonencode(range(3))`, "[0,1,2]"},
		{`jsonencode(flatten([[1], [2, 3]]))`, "[1,2,3]"},
		{`regex("[0-9]+", "ab123")`, "123"},
		{`formatdate("YYYY", "2024-01-02T00:00:00Z")`, "2024"},
		{`timeadd("2024-01-01T00:00:00Z", "1h")`, "2024-01-01T01:00:00Z"},
		{`true ? "yes" : "no"`, "yes"},
		{`source.ledger.id`, "ledger"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			src := `pipeline "p" {}
locals {
  m = { a = 1 }
}
source "ledger" {
  command = ["./x"]
}
processor "app" {
  command = ["./app"]
  inputs  = [source.ledger]
  env = {
    X = ` + tt.expr + `
  }
}
`
			p := mustLoadHCL(t, src, LoadOptions{})
			if got := envOf(t, p, "processor.app", "X").Value; got != tt.want {
				t.Errorf("%s = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestHCLComponentReferencesInTemplatesAreDeferred(t *testing.T) {
	src := `pipeline "p" {}
source "ledger" {
  command = ["./ledger"]
}
processor "app" {
  command = ["./app"]
  inputs  = [source.ledger]
  env = {
    UPSTREAM = "http://${source.ledger.address}/x"
    PORT     = source.ledger.port
    HEALTH   = "${source.ledger.health_port}"
    PLAIN    = "not deferred"
    ESCAPED  = "$${literal}"
  }
}
`
	p := mustLoadHCL(t, src, LoadOptions{})
	want := map[string]EnvValue{
		"UPSTREAM": {Value: "http://${source.ledger.address}/x", Deferred: true},
		"PORT":     {Value: "${source.ledger.port}", Deferred: true},
		"HEALTH":   {Value: "${source.ledger.health_port}", Deferred: true},
		"PLAIN":    {Value: "not deferred"},
		"ESCAPED":  {Value: "${literal}"},
	}
	if got := p.Component("processor.app").Env; !reflect.DeepEqual(got, want) {
		t.Errorf("env = %v\nwant %v", got, want)
	}
	if got := p.Component("processor.app").Upstreams(); !reflect.DeepEqual(got, []string{"source.ledger"}) {
		t.Errorf("upstreams = %v", got)
	}
}

func TestHCLComponentReferenceErrors(t *testing.T) {
	tests := []struct {
		name, attr string
		wants      []string
	}{
		{"unknown attribute", `env = { X = source.ledger.nope }`,
			[]string{`test.hcl:6:15: error: Unsupported attribute: source.ledger has no attribute "nope"; a component has id, address, port, health_port.`}},
		{"near-miss attribute", `env = { X = source.ledger.adress }`, []string{`Did you mean address?`}},
		{"undeclared component", `env = { X = source.legder.address }`,
			[]string{`test.hcl:6:15: error: Reference to undeclared component: source.legder is not declared in this pipeline. Did you mean source.ledger?`}},
		{"deferred value outside env", `stop_timeout = source.ledger.address`,
			[]string{`test.hcl:6:18: error: Value known only after apply: processor.app: stop_timeout refers to source.ledger.address, which is known only after apply; such references can be used only in env values`}},
		{"deferred port as a number", `replicas = source.ledger.port`,
			[]string{`test.hcl:6:14: error: Value known only after apply: processor.app: replicas refers to source.ledger.port, which is known only after apply; such references can be used only in env values`}},
		{"deferred in command", `args = ["--up", source.ledger.address]`,
			[]string{`Value known only after apply: processor.app: args[1] refers to source.ledger.address`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := `pipeline "p" {}
source "ledger" { command = ["./x"] }
processor "app" {
  command = ["./app"]
  inputs  = [source.ledger]
  ` + tt.attr + `
}
`
			_, diags := loadHCLString(t, src, LoadOptions{})
			wantDiag(t, diags, tt.wants...)
			if len(diags) != 1 {
				t.Errorf("want one diagnostic:\n%s", FormatDiagnostics(diags))
			}
		})
	}
}

func TestHCLInputsAreReferences(t *testing.T) {
	src := `pipeline "p" {}
source "b" { command = ["./b"] }
source "a" { command = ["./a"] }
processor "x" {
  command = ["./x"]
  inputs  = [source.a]
}
sink "s" {
  command    = ["./s"]
  inputs     = [source.b, source.a, source.b]
  depends_on = [processor.x]
}
`
	p := mustLoadHCL(t, src, LoadOptions{})
	s := p.Component("sink.s")
	if !reflect.DeepEqual(s.Inputs, []string{"source.a", "source.b"}) || !reflect.DeepEqual(s.DependsOn, []string{"processor.x"}) {
		t.Errorf("inputs %v depends_on %v", s.Inputs, s.DependsOn)
	}
	// inputs.N is the range of the N-th input as the model holds it.
	for key, col := range map[string]int{"inputs.0": 27, "inputs.1": 17, "depends_on.0": 17, "inputs": 16, "depends_on": 16} {
		if r := s.Ranges[key]; r.Start.Column != col {
			t.Errorf("%s at column %d, want %d", key, r.Start.Column, col)
		}
	}

	t.Run("unknown input is kept for Validate", func(t *testing.T) {
		p, diags := loadHCLString(t, `pipeline "p" {}
source "a" { command = ["./a"] }
sink "s" {
  command = ["./s"]
  inputs  = [source.a, processor.nope]
}
`, LoadOptions{})
		wantDiag(t, diags, "test.hcl:5:24: error: Unknown input: sink.s: input processor.nope is not a component of this pipeline")
		if got := p.Component("sink.s").Inputs; !reflect.DeepEqual(got, []string{"processor.nope", "source.a"}) {
			t.Errorf("inputs = %v", got)
		}
	})

	malformed := []struct {
		name, inputs string
		want         string
	}{
		{"a variable", `[var.x]`, `test.hcl:5:13: error: Invalid reference: sink.s: inputs[0] is var.x, which is not a component`},
		{"a quoted address", `["source.a"]`, `test.hcl:5:13: error: Invalid reference: sink.s: inputs[0] must be a component reference like source.ledger, not a string or an expression; write source.a without quotes`},
		{"a bare kind", `[source]`, `inputs[0] is source, which is not a component`},
		{"an attribute", `[source.a.address]`, `inputs[0] is source.a.address, which is not a component`},
		{"a function call", `[upper(source.a)]`, `inputs[0] must be a component reference`},
		{"not a list", `source.a`, `test.hcl:5:12: error: Invalid inputs: sink.s: inputs must be a list of component references, like [source.ledger]`},
	}
	for _, tt := range malformed {
		t.Run("malformed: "+tt.name, func(t *testing.T) {
			_, diags := loadHCLString(t, `pipeline "p" {}
source "a" { command = ["./a"] }
sink "s" {
  command = ["./s"]
  inputs = `+tt.inputs+`
}
`, LoadOptions{})
			wantDiag(t, diags, tt.want)
		})
	}
}

func TestHCLBlocks(t *testing.T) {
	src := `pipeline "p" {
  executor = "docker"
}
source "a" {
  image        = "img"
  stop_timeout = "30s"
  replicas     = 2
  health {
    http              = "/ready"
    port              = 8088
    interval          = "5s"
    timeout           = "2s"
    start_period      = "1m"
    failure_threshold = 4
    success_threshold = 2
    liveness          = true
  }
  restart {
    policy      = "always"
    max_retries = 10
    backoff {
      initial    = "2s"
      max        = "1m"
      multiplier = 1.5
    }
  }
  resources {
    cpu            = 0.5
    memory         = "256Mi"
    cpu_request    = "250m"
    memory_request = 134217728
  }
  port {
    name           = "grpc"
    container_port = 50051
    host_port      = 50051
    host_ip        = "0.0.0.0"
    protocol       = "UDP"
  }
  port {
    container_port = 9090
  }
  volume {
    name           = "data"
    host_path      = "./data"
    container_path = "/data"
    read_only      = true
  }
}
source "b" {
  image = "img"
  health {
    tcp = true
  }
}
source "c" {
  image = "img"
  health {
    exec = ["pg_isready", "-q"]
  }
}
source "d" {
  image = "img"
  health {
    http = "http://localhost:1234/healthz"
  }
}
`
	p := mustLoadHCL(t, src, LoadOptions{})
	a := p.Component("source.a")
	wantHealth := &Health{Type: HealthHTTP, Path: "/ready", Port: 8088, Interval: Duration(5 * time.Second),
		Timeout: Duration(2 * time.Second), StartPeriod: Duration(time.Minute), FailureThreshold: 4, SuccessThreshold: 2, Liveness: true}
	if !reflect.DeepEqual(a.Health, wantHealth) {
		t.Errorf("health = %+v", a.Health)
	}
	wantRestart := Restart{Policy: RestartAlways, MaxRetries: 10, Backoff: Backoff{Initial: Duration(2 * time.Second), Max: Duration(time.Minute), Multiplier: 1.5}}
	if a.Restart != wantRestart {
		t.Errorf("restart = %+v", a.Restart)
	}
	if want := (Resources{CPULimit: 500, MemoryLimit: 256 << 20, CPURequest: 250, MemoryRequest: 128 << 20}); a.Resources != want {
		t.Errorf("resources = %+v", a.Resources)
	}
	wantPorts := []Port{
		{Name: "grpc", ContainerPort: 50051, HostPort: 50051, HostIP: "0.0.0.0", Protocol: "udp"},
		{ContainerPort: 9090, Protocol: "tcp"},
	}
	if !reflect.DeepEqual(a.Ports, wantPorts) {
		t.Errorf("ports = %+v", a.Ports)
	}
	if want := []Volume{{Name: "data", HostPath: "./data", ContainerPath: "/data", ReadOnly: true}}; !reflect.DeepEqual(a.Volumes, want) {
		t.Errorf("volumes = %+v", a.Volumes)
	}
	if a.StopTimeout != Duration(30*time.Second) || a.Replicas != 2 {
		t.Errorf("stop_timeout %s replicas %d", a.StopTimeout, a.Replicas)
	}
	for _, key := range []string{"id", "image", "stop_timeout", "replicas", "health", "health.port", "health.interval",
		"health.timeout", "health.start_period", "health.failure_threshold", "health.success_threshold",
		"restart.policy", "restart.max_retries", "restart.backoff.initial", "restart.backoff.max", "restart.backoff.multiplier",
		"resources.cpu", "resources.memory", "resources.cpu_request", "resources.memory_request",
		"ports.0.container_port", "ports.0.host_port", "ports.0.protocol", "ports.1.container_port",
		"volumes.0.host_path", "volumes.0.container_path"} {
		if r, ok := a.Ranges[key]; !ok || r.Filename != "test.hcl" || r.Start.Line == 0 {
			t.Errorf("no range for %s", key)
		}
	}
	if r := a.Ranges["health.port"]; r.Start.Line != 10 || r.Start.Column != 25 {
		t.Errorf("health.port range = %s", r)
	}
	if h := p.Component("source.b").Health; h == nil || h.Type != HealthTCP {
		t.Errorf("tcp health = %+v", h)
	}
	if h := p.Component("source.c").Health; h == nil || h.Type != HealthExec || !reflect.DeepEqual(h.Command, []string{"pg_isready", "-q"}) {
		t.Errorf("exec health = %+v", h)
	}
	if h := p.Component("source.d").Health; h == nil || h.URL != "http://localhost:1234/healthz" || h.Path != "/healthz" || h.Port != 1234 {
		t.Errorf("url health = %+v", h)
	}
}

func TestHCLBlockErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       string
	}{
		{"two probe types", `health {
    http = "/h"
    tcp  = true
  }`, "test.hcl:4:3: error: Conflicting health probes: source.a: health sets http and tcp; set exactly one of http, tcp or exec"},
		{"no probe", `health {
    port = 1
  }`, "test.hcl:4:3: error: Missing health probe: source.a: health needs one of http (a path), tcp = true or exec (a command)"},
		{"tcp false", `health {
    tcp = false
  }`, "test.hcl:5:11: error: Invalid health probe: source.a: tcp = false names no probe"},
		{"two health blocks", `health {
    tcp = true
  }
  health {
    tcp = true
  }`, "test.hcl:7:3: error: Duplicate health block: source.a: only one health block is allowed; the first is at test.hcl:4:3"},
		{"invalid url", `health {
    http = "http://:80/x"
  }`, `test.hcl:5:12: error: Invalid health endpoint: source.a: health.http "http://:80/x" is not a full URL`},
		{"invalid duration", `health {
    tcp      = true
    interval = "5 seconds"
  }`, `test.hcl:6:16: error: Invalid duration: source.a: health.interval "5 seconds" is not a duration`},
		{"invalid backoff", `restart {
    backoff {
      max = "forever"
    }
  }`, `test.hcl:6:13: error: Invalid duration: source.a: restart.backoff.max "forever" is not a duration`},
		{"invalid cpu", `resources {
    cpu = "lots"
  }`, `test.hcl:5:11: error: Invalid quantity: source.a: resources.cpu: invalid CPU quantity "lots"`},
		{"invalid memory type", `resources {
    memory = ["1Gi"]
  }`, `test.hcl:5:14: error: Incorrect attribute value type: source.a: resources.memory must be a quantity (a string or a number), not a list`},
		{"unknown block attribute", `restart {
    polcy = "never"
  }`, `test.hcl:5:5: error: Unsupported argument: An argument named "polcy" is not expected here. Did you mean "policy"?`},
		{"port protocol type", `port {
    container_port = 80
    protocol       = 6
  }`, `test.hcl:6:22: error: Invalid protocol: source.a: protocol "6": use tcp or udp`},
		{"port validated at its attribute", `port {
    container_port = 70000
  }`, `test.hcl:5:22: error: Invalid port: source.a: container port 70000 is outside 1-65535`},
		{"volume validated at its attribute", `volume {
    host_path      = "./d"
    container_path = "relative"
  }`, `test.hcl:6:22: error: Invalid volume: source.a: volume 0: container_path "relative" must be absolute`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := `pipeline "p" {}
source "a" {
  command = ["./a"]
  ` + tt.body + `
}
`
			_, diags := loadHCLString(t, src, LoadOptions{})
			wantDiag(t, diags, tt.want)
			if len(diags) != 1 {
				t.Errorf("want one diagnostic:\n%s", FormatDiagnostics(diags))
			}
		})
	}
}

func TestHCLWrongAttributeTypes(t *testing.T) {
	tests := []struct{ attr, want string }{
		{`replicas = "two"`, `test.hcl:4:14: error: Incorrect attribute value type: source.a: replicas must be a whole number, not "two"`},
		{`replicas = 1.5`, `source.a: replicas must be a whole number, not the number 1.5`},
		{`env = ["a"]`, `test.hcl:4:9: error: Incorrect attribute value type: source.a: env must be a map of strings, not a list`},
		{`env = { A = ["x"] }`, `test.hcl:4:15: error: Incorrect attribute value type: source.a: env A must be a string, not a list`},
		{`args = "--flag"`, `source.a: args must be a list of strings, not "--flag"`},
		{`args = ["a", {}]`, `source.a: args[1] must be a string, not an object`},
		{`image = ["x"]`, `source.a: image must be a string, not a list`},
		{`config = "x"`, `source.a: config must be an object, not "x"`},
		{`env = {
    A = "1"
    A = "2"
  }`, `test.hcl:6:5: error: Duplicate env key: source.a: env A is set twice; the first is at test.hcl:5:9`},
		{`config = {
    a = 1
    "a" = 2
  }`, `test.hcl:6:5: error: Duplicate config key: source.a: config a is set twice; the first is at test.hcl:5:9`},
		{`config = {
    log-level = "debug"
    log_level = "info"
  }`, `test.hcl:6:17: error: Duplicate config key: source.a: config keys log-level and log_level both become the environment variable LOG_LEVEL`},
		{`executor = 5 == 5`, `test.hcl:4:14: error: Unknown executor: source.a: executor "true" is not one of process, docker, nomad, kubernetes`},
		{`imagee = "x"`, `test.hcl:4:3: error: Unsupported argument: An argument named "imagee" is not expected here. Did you mean "image"?`},
		{`healthcheck {}`, `test.hcl:4:3: error: Unsupported block type: Blocks of type "healthcheck" are not expected here.`},
	}
	for _, tt := range tests {
		t.Run(tt.attr, func(t *testing.T) {
			src := `pipeline "p" {}
source "a" {
  command = ["./a"]
  ` + tt.attr + `
}
`
			_, diags := loadHCLString(t, src, LoadOptions{})
			wantDiag(t, diags, tt.want)
		})
	}
}

func TestHCLUnknownAttributeErrorHasPosition(t *testing.T) {
	_, diags := loadHCLString(t, `pipeline "p" {
  exector = "docker"
}
`, LoadOptions{})
	wantDiag(t, diags, `test.hcl:2:3: error: Unsupported argument: An argument named "exector" is not expected here. Did you mean "executor"?`)
}

func TestHCLPipelineBlock(t *testing.T) {
	p := mustLoadHCL(t, `pipeline "ttp" {
  executor           = "docker"
  description        = "token transfers"
  namespace          = "stellar"
  labels             = { team = "data" }
  annotations        = { "example.com/owner" = "me" }
  config             = { batch = 100, flags = ["a"], ratio = 0.5, on = true }
  component_registry = "ghcr.io/me"
}
source "a" {
  type = "stellar-live-source@v1.0.0"
}
`, LoadOptions{})
	want := &Pipeline{Name: "ttp", Executor: "docker", Description: "token transfers", Namespace: "stellar",
		Labels: map[string]string{"team": "data"}, Annotations: map[string]string{"example.com/owner": "me"},
		Config:            map[string]string{"batch": "100", "flags": `["a"]`, "ratio": "0.5", "on": "true"},
		ComponentRegistry: "ghcr.io/me"}
	got := *p
	got.Components, got.Variables, got.Ranges, got.File, got.Format = nil, nil, nil, "", ""
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("pipeline = %+v\nwant %+v", got, *want)
	}
	if img := p.Components[0].Image; img != "ghcr.io/me/stellar-live-source:v1.0.0" {
		t.Errorf("image = %q", img)
	}
	if r := p.Ranges["name"]; r.Start.Line != 1 || r.Start.Column != 10 {
		t.Errorf("name range = %s", r)
	}
	if r := p.Ranges["executor"]; r.Start.Line != 2 || r.Start.Column != 24 {
		t.Errorf("executor range = %s", r)
	}
}

func TestHCLPipelineBlockCount(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		p, diags := loadHCLString(t, `source "a" { command = ["./a"] }`, LoadOptions{})
		wantDiag(t, diags, "test.hcl:1:1: error: Missing pipeline block")
		if p == nil {
			t.Error("a file without a pipeline block still yields its components")
		}
	})
	t.Run("two", func(t *testing.T) {
		_, diags := loadHCLString(t, "pipeline \"a\" {}\npipeline \"b\" {}\n", LoadOptions{})
		wantDiag(t, diags, `test.hcl:2:1: error: Duplicate pipeline block: a file holds exactly one pipeline; pipeline "a" is already declared at test.hcl:1:1`)
	})
}

func TestHCLSyntaxErrorYieldsNoPipeline(t *testing.T) {
	p, diags := loadHCLString(t, "pipeline \"p\" {\n  executor = \n}\n", LoadOptions{})
	if p != nil {
		t.Error("want a nil pipeline for a file that does not parse")
	}
	wantDiag(t, diags, "test.hcl:2:14: error: Invalid expression")
}

func TestHCLConfigRendersLikeConfigValueString(t *testing.T) {
	p := mustLoadHCL(t, `pipeline "p" {}
source "a" {
  command = ["./a"]
  env     = { START_LEDGER = "explicit" }
  config = {
    start_ledger = 5
    "batch-size" = 1.0
    ratio        = 0.25
    nested       = { b = [1, 2.5, "x", null], a = true }
    empty        = null
  }
}
`, LoadOptions{})
	want := map[string]EnvValue{
		"START_LEDGER": {Value: "explicit"},
		"BATCH_SIZE":   {Value: "1"},
		"RATIO":        {Value: "0.25"},
		"NESTED":       {Value: `{"a":true,"b":[1,2.5,"x",null]}`},
		"EMPTY":        {Value: ""},
	}
	if got := p.Components[0].Env; !reflect.DeepEqual(got, want) {
		t.Errorf("env = %v\nwant %v", got, want)
	}
}

func TestHCLEnvRangesPointAtValues(t *testing.T) {
	p := mustLoadHCL(t, `pipeline "p" {}
locals {
  common = { SHARED = "1" }
}
source "a" {
  command = ["./a"]
  env = {
    FIRST  = "x"
    "QUOTED" = "y"
  }
}
source "b" {
  command = ["./b"]
  env     = merge(local.common, { OWN = "2" })
}
source "c" {
  command = ["./c"]
  config  = { start_ledger = 5 }
}
`, LoadOptions{})
	a, b := p.Component("source.a"), p.Component("source.b")
	if r := p.Component("source.c").Ranges["env.START_LEDGER"]; r.Start.Line != 18 || r.Start.Column != 30 {
		t.Errorf("env.START_LEDGER from config = %s", r)
	}
	if r := a.Ranges["env.FIRST"]; r.Start.Line != 8 || r.Start.Column != 14 {
		t.Errorf("env.FIRST = %s", r)
	}
	if r := a.Ranges["env.QUOTED"]; r.Start.Line != 9 || r.Start.Column != 16 {
		t.Errorf("env.QUOTED = %s", r)
	}
	if r := b.Ranges["env.SHARED"]; r != b.Ranges["env"] {
		t.Errorf("env.SHARED = %s, want the attribute's range %s", r, b.Ranges["env"])
	}
}

func TestHCLVariablesRecordDeclarations(t *testing.T) {
	p := mustLoadHCL(t, withSource(`variable "tags" {
  type        = map(number)
  default     = { b = 2, a = 1 }
  description = "the tags"
}
variable "key" {
  default   = "k"
  sensitive = true
}`, `X = "x"`), LoadOptions{})
	if len(p.Variables) != 2 {
		t.Fatalf("variables = %+v", p.Variables)
	}
	tags, key := p.Variables[0], p.Variables[1]
	if tags.Name != "tags" || tags.Description != "the tags" || tags.Sensitive || tags.DeclRange.Start.Line != 2 {
		t.Errorf("tags = %+v", tags)
	}
	if !strings.Contains(tags.Value, "a = 1") || !strings.Contains(tags.Value, "b = 2") {
		t.Errorf("tags value = %s", tags.Value)
	}
	if !key.Sensitive || key.Value != `"k"` {
		t.Errorf("key = %+v", key)
	}
}

func TestHCLVariableDeclarationErrors(t *testing.T) {
	tests := []struct{ decls, want string }{
		{`variable "a" { default = 1 }
variable "a" { default = 2 }`, `test.hcl:3:10: error: Duplicate variable declaration: variable "a" was already declared at test.hcl:2:1`},
		{`variable "a" { type = strin }`, `test.hcl:2:23: error: Invalid type specification: The keyword "strin" is not a valid type specification.`},
		{`variable "a" { default = var.b }`, `test.hcl:2:26: error: Variables not allowed`},
		{`variable "a" { sensitive = "yes" }`, `variable a: sensitive must be true or false, not "yes"`},
		{`variable "a" { defualt = 1 }`, `Did you mean "default"?`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, diags := loadHCLString(t, withSource(tt.decls, `X = "x"`), LoadOptions{})
			wantDiag(t, diags, tt.want)
		})
	}
}

var updateHCLGolden = flag.Bool("update-hcl", false, "rewrite testdata/hcl/*.hcl.json from the loader's output")

// TestHCLTestdataCanonicalForm loads every valid file under testdata/hcl and
// compares its canonical JSON, indented, with NAME.hcl.json.
func TestHCLTestdataCanonicalForm(t *testing.T) {
	files, err := filepath.Glob("testdata/hcl/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p, diags := Load(file, LoadOptions{Environ: []string{}})
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%s", FormatDiagnostics(diags))
			}
			var buf bytes.Buffer
			if err := json.Indent(&buf, p.CanonicalJSON(), "", "  "); err != nil {
				t.Fatal(err)
			}
			buf.WriteByte('\n')
			golden := file + ".json"
			if *updateHCLGolden {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update-hcl to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("canonical JSON differs from %s (run with -update-hcl to accept):\n%s", golden, buf.String())
			}
		})
	}
}

func TestHCLVarFilesOverrideTestdataDefaults(t *testing.T) {
	opts := LoadOptions{
		Environ: []string{"FLOWCTL_VAR_networks=[\"ignored\"]"},
		Vars: []VarArg{
			{File: "testdata/hcl/functions.vars"},
			{File: "testdata/hcl/functions.vars.json"},
			{Name: "ports", Value: `{ grpc = 7000, health = 7001 }`},
		},
	}
	p, diags := Load("testdata/hcl/functions.hcl", opts)
	if len(diags) > 0 {
		t.Fatal(FormatDiagnostics(diags))
	}
	c := p.Component("source.ledger")
	want := map[string]string{
		"ENDPOINT": "ledger.svc.local:7000", // -var beats the HCL var-file
		"NETWORKS": `["pubnet"]`,            // the JSON file, given last, beats the HCL one
		"LEVEL":    "WARN",
		"VERBOSE":  "true",
	}
	for name, v := range want {
		if got := c.Env[name].Value; got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	if !reflect.DeepEqual(c.Command, []string{"./bin/ledger", "--network=pubnet"}) || c.Health.Port != 7001 {
		t.Errorf("command %q health port %d", c.Command, c.Health.Port)
	}
}

func TestHCLFunctionsRefuseHugePadding(t *testing.T) {
	for _, expr := range []string{`indent(999999999, "a\nb")`, `format("%999999999d", 1)`, `join("", formatlist("%.99999s", ["a"]))`} {
		t.Run(expr, func(t *testing.T) {
			_, diags := loadHCLString(t, withSource("", "X = "+expr), LoadOptions{})
			wantDiag(t, diags, "Invalid function argument", "at most 10000")
		})
	}
	p := mustLoadHCL(t, withSource("", `X = format("%5d|%-3s|", 42, "a")`), LoadOptions{})
	if got := envOf(t, p, "source.app", "X").Value; got != "   42|a  |" {
		t.Errorf("X = %q", got)
	}
}
