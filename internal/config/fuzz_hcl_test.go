package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadHCL feeds arbitrary text to the HCL loader: it must never panic,
// and any pipeline it returns must render its canonical form.
func FuzzLoadHCL(f *testing.F) {
	for _, glob := range []string{"testdata/hcl/*.hcl", "testdata/invalid/*.hcl"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if src, err := os.ReadFile(file); err == nil {
				f.Add(src)
			}
		}
	}
	for _, seed := range fuzzHCLSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, diags := LoadBytes(src, "fuzz.hcl", LoadOptions{Environ: []string{"FLOWCTL_VAR_x=1"}})
		for _, d := range diags {
			if d == nil || d.Summary == "" {
				t.Fatalf("diagnostic without a summary: %#v", d)
			}
		}
		if p == nil {
			if !diags.HasErrors() {
				t.Fatal("nil pipeline without an error")
			}
			return
		}
		_ = p.CanonicalJSON()
		for _, c := range p.Components {
			_ = c.UnkeyedSpecHash()
			_ = c.Redacted()
		}
	})
}

// fuzzHCLSeeds are small valid and broken files; crashes the fuzzer found
// are added here.
var fuzzHCLSeeds = []string{
	``,
	`pipeline "p" {}`,
	`pipeline "p" {
  executor = "docker"
}
variable "x" {
  type    = number
  default = 1
}
source "a" {
  image = "i"
  env   = { A = var.x, B = "${source.a.address}" }
}`,
	`pipeline "p" {}
locals {
  a = local.b
  b = local.a
}
source "a" {
  command = [local.a]
}`,
	`pipeline "p" {}
source "a" {
  command = ["x"]
  health {
    http = "/"
    tcp  = true
  }
  resources {
    cpu = "-1"
  }
}`,
	`pipeline "p" {}
variable "s" {
  default   = "secret"
  sensitive = true
  validation {
    condition     = length(var.s) > 100
    error_message = "too short ${var.s}"
  }
}
sink "a" {
  command = [var.s]
  inputs  = [source.nope, var.s, "x", source]
}`,
	`pipeline "p" {}
source "a" {
  command = ["x"]
  env = { for k in ["A", "B"] : k => upper(k) }
  config = { nested = { list = [1, 2.5, null, true] } }
}`,
	`pipeline "p" {}
source "a" {
  command = try(jsondecode("["), ["x"])
  replicas = 1e100
  stop_timeout = -1
}`,
	`pipeline "p" { labels = { a = null } }
source "a" {
  env = { (local.nope) = 1 }
}`,
	`pipeline "p" {
`,
	`variable "v" { type = object({ a = optional(string, "d") }) }`,
	`pipeline "p" {}
source "a" {
  command = [for s in source : s.address]
  env = { X = source["a"]["address"], Y = source.a[0] }
}`,
}

// fuzzSecret is the value of the sensitive variable in FuzzHCLExpression; no
// diagnostic may show it, whatever the expression does with it.
const fuzzSecret = "Zq7secretXy"

// FuzzHCLExpression puts an arbitrary expression into a valid pipeline, in a
// local and in env, next to a sensitive variable: loading must not panic, and
// no diagnostic may show the sensitive value, in any letter case.
func FuzzHCLExpression(f *testing.F) {
	for _, seed := range []string{
		`var.token`, `upper(var.token)`, `tonumber(var.token)`, `regex(var.token, "x")`,
		`"${source.a.address}/x"`, `source.a.nope`, `local.l`, `[for s in var.list : s]`,
		`{ (var.token) = 1 }`, `try(var.nope, 1)`, `jsondecode(var.token)`, `var.token ? 1 : 2`,
		`format("%d", var.token)`, `element(var.list, var.token)`, `strrev(var.token)`,
		`timeadd(var.token, "1h")`, `formatdate(var.token, "2024-01-01T00:00:00Z")`, `range(1e9)`,
		`csvdecode(var.token)`, `split("", var.token)[99]`, `var.list[var.token]`, `{a = var.token}[var.token]`,
		`source`, `source.a`, `var`, `1/0`, `-1e999`, `"%{ for x in var.list }${x}%{ endfor }"`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		src := `pipeline "p" {}
variable "token" {
  default   = "` + fuzzSecret + `"
  sensitive = true
}
variable "list" {
  default = ["a", "b"]
}
locals {
  l = ` + expr + `
}
source "a" {
  command = ["./a"]
  env = {
    X = ` + expr + `
    Y = local.l
  }
}
processor "b" {
  command = ["./b"]
  inputs  = [source.a]
  args    = [` + expr + `]
}
`
		p, diags := LoadBytes([]byte(src), "fuzz.hcl", LoadOptions{Environ: []string{}})
		if p != nil {
			_ = p.CanonicalJSON()
		}
		if strings.Contains(strings.ToLower(expr), strings.ToLower(fuzzSecret)) {
			return
		}
		for _, d := range diags {
			text := strings.ToLower(d.Summary + " " + d.Detail)
			for _, leak := range []string{strings.ToLower(fuzzSecret), reverse(strings.ToLower(fuzzSecret))} {
				if strings.Contains(text, leak) {
					t.Fatalf("diagnostic shows the sensitive value: %s", FormatDiagnostic(d))
				}
			}
		}
	})
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}
