package config

import (
	"strings"
	"testing"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseImageRef(t *testing.T) {
	for _, tc := range []struct {
		in                          string
		registry, repo, tag, digest string
		wantErr                     bool
	}{
		{in: "alpine", registry: "docker.io", repo: "library/alpine"},
		{in: "alpine:3.20", registry: "docker.io", repo: "library/alpine", tag: "3.20"},
		{in: "withobsrvr/ttp:latest", registry: "docker.io", repo: "withobsrvr/ttp", tag: "latest"},
		{in: "ghcr.io/acme/x:v1", registry: "ghcr.io", repo: "acme/x", tag: "v1"},
		{in: "localhost:5000/x", registry: "localhost:5000", repo: "x"},
		{in: "localhost/x:1", registry: "localhost", repo: "x", tag: "1"},
		{in: "index.docker.io/acme/x", registry: "docker.io", repo: "acme/x"},
		{in: "acme/x@" + testDigest, registry: "docker.io", repo: "acme/x", digest: testDigest},
		{in: "acme/x:v1@" + testDigest, registry: "docker.io", repo: "acme/x", tag: "v1", digest: testDigest},
		{in: "acme/x@sha256:abc", wantErr: true},
		{in: "acme/x:", wantErr: true},
		{in: "", wantErr: true},
		{in: "/x", wantErr: true},
		{in: "a b", wantErr: true},
	} {
		r, err := ParseImageRef(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: no error, got %+v", tc.in, r)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if r.Registry != tc.registry || r.Repository != tc.repo || r.Tag != tc.tag || r.Digest != tc.digest {
			t.Errorf("%q: got %+v", tc.in, r)
		}
	}
}

func TestTrustedRegistriesMatchHostsAndRepositoryPrefixes(t *testing.T) {
	trusted := []string{normalizeTrusted("ghcr.io"), normalizeTrusted("withobsrvr"), normalizeTrusted("localhost:5000/team/")}
	for img, want := range map[string]bool{
		"ghcr.io/anyone/x:1":         true,
		"withobsrvr/ttp:latest":      true,
		"docker.io/withobsrvr/ttp":   true,
		"withobsrvr":                 false, // docker.io/library/withobsrvr
		"withobsrvr-evil/ttp":        false,
		"localhost:5000/team/a":      true,
		"localhost:5000/other/a":     false,
		"ghcr.io.evil.example/x":     false,
		"alpine":                     false,
		"docker.io/library/alpine:3": false,
	} {
		r, err := ParseImageRef(img)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.TrustedBy(trusted); got != want {
			t.Errorf("%s trusted by %v: %v, want %v", img, trusted, got, want)
		}
	}
}

// The image policy says the same thing in both formats.
const imagePolicyHCL = `pipeline "pinned" {
  executor           = "docker"
  trusted_registries = ["ghcr.io/acme", "withobsrvr"]
  require_digest     = true
}

source "a" {
  image    = "ghcr.io/acme/a@` + testDigest + `"
  pull     = "never"
}

sink "b" {
  image    = "withobsrvr/b:1"
  image_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  pull     = "always"
  inputs   = [source.a]
}

sink "c" {
  image  = "ghcr.io/acme/c@` + testDigest + `"
  pull   = "missing"
  inputs = [source.a]
}
`

const imagePolicyYAML = `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: pinned
spec:
  driver: docker
  trusted_registries: [withobsrvr, ghcr.io/acme/]
  require_digest: true
  sources:
    - id: a
      image: ghcr.io/acme/a@` + testDigest + `
      pull: Never
  sinks:
    - id: b
      image: withobsrvr/b:1
      image_id: ` + testDigest + `
      pull: always
      inputs: [a]
    - id: c
      image: ghcr.io/acme/c@` + testDigest + `
      inputs: [a]
`

func TestImagePolicyLoadsTheSameFromHCLAndYAML(t *testing.T) {
	h, diags := LoadBytes([]byte(imagePolicyHCL), "p.hcl", LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("hcl: %s", FormatDiagnostics(diags))
	}
	y, diags := LoadBytes([]byte(imagePolicyYAML), "p.yaml", LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("yaml: %s", FormatDiagnostics(diags))
	}
	if got, want := string(y.CanonicalJSON()), string(h.CanonicalJSON()); got != want {
		t.Fatalf("YAML and HCL differ\nhcl:  %s\nyaml: %s", want, got)
	}
	if got := strings.Join(h.TrustedRegistries, ","); got != "docker.io/withobsrvr,ghcr.io/acme" {
		t.Errorf("trusted_registries normalised to %s", got)
	}
	if !h.RequireDigest {
		t.Error("require_digest lost")
	}
	a, b, c := h.Component("source.a"), h.Component("sink.b"), h.Component("sink.c")
	if a.Pull != PullNever || b.Pull != PullAlways || c.Pull != "" || c.PullPolicy() != PullMissing {
		t.Errorf("pull: a=%q b=%q c=%q (%s)", a.Pull, b.Pull, c.Pull, c.PullPolicy())
	}
	if b.ImageID != testDigest {
		t.Errorf("image_id normalised to %q", b.ImageID)
	}
	for _, format := range []string{FormatHCL, FormatYAML} {
		assertRoundTrip(t, h, format)
	}
}

// Pipelines written before pull existed keep their spec hashes: the default
// is not part of the canonical form.
func TestDefaultPullPolicyLeavesTheCanonicalFormAlone(t *testing.T) {
	load := func(extra string) *Component {
		t.Helper()
		src := "pipeline \"p\" {\n  executor = \"docker\"\n}\nsource \"a\" {\n  image = \"x:1\"\n" + extra + "}\n"
		p, diags := LoadBytes([]byte(src), "p.hcl", LoadOptions{Environ: []string{}})
		if diags.HasErrors() {
			t.Fatalf("%s", FormatDiagnostics(diags))
		}
		return p.Component("source.a")
	}
	plain, stated := load(""), load("  pull = \"missing\"\n")
	if plain.UnkeyedSpecHash() != stated.UnkeyedSpecHash() {
		t.Errorf("stating the default pull policy changed the hash")
	}
	for _, field := range []string{"pull", "image_id"} {
		if strings.Contains(string(plain.CanonicalJSON()), `"`+field+`"`) {
			t.Errorf("canonical JSON mentions %s: %s", field, plain.CanonicalJSON())
		}
	}
	if load("  pull = \"always\"\n").UnkeyedSpecHash() == plain.UnkeyedSpecHash() {
		t.Errorf("pull = always hashes like the default")
	}
}

func TestImagePolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		name, pipeline, comp string
		want                 []string // substrings of the diagnostics, in order
	}{
		{
			name:     "untrusted registry",
			pipeline: `trusted_registries = ["ghcr.io/acme"]`,
			comp:     `image = "docker.io/evil/x:1"`,
			want:     []string{`p.hcl:6:11: error: Untrusted image: source.a: image "docker.io/evil/x:1" comes from docker.io/evil/x, which trusted_registries (ghcr.io/acme) does not list`},
		},
		{
			name:     "digest required",
			pipeline: `require_digest = true`,
			comp:     `image = "ghcr.io/acme/x:1"`,
			want:     []string{`p.hcl:6:11: error: Image not pinned: source.a: the pipeline sets require_digest, and image "ghcr.io/acme/x:1" is pinned neither by digest (ghcr.io/acme/x@sha256:...) nor by image_id`},
		},
		{
			name:     "image_id satisfies require_digest",
			pipeline: `require_digest = true`,
			comp:     "image = \"x:1\"\n  image_id = \"" + testDigest + "\"",
		},
		{
			name: "bad pull policy",
			comp: "image = \"x:1\"\n  pull = \"sometimes\"",
			want: []string{`error: Invalid pull policy: source.a: pull "sometimes" is not one of missing, always, never`},
		},
		{
			name: "bad image_id",
			comp: "image = \"x:1\"\n  image_id = \"abc\"",
			want: []string{`error: Invalid image_id: source.a: image_id "abc"`},
		},
		{
			name: "bad digest",
			comp: `image = "x@sha256:abc"`,
			want: []string{`error: Invalid image: source.a: image "x@sha256:abc": the digest must be sha256:<64 lower-case hex digits>`},
		},
		{
			name: "pull on a process",
			comp: "executor = \"process\"\n  command = [\"./x\"]\n  pull = \"never\"\n  image_id = \"" + testDigest + "\"",
			want: []string{
				`error: Image setting on the process executor: source.a: pull applies to container images, which the process executor does not run`,
				`error: Image setting on the process executor: source.a: image_id applies to container images`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "pipeline \"p\" {\n  executor = \"docker\"\n  " + tc.pipeline + "\n}\nsource \"a\" {\n  " + tc.comp + "\n}\n"
			_, diags := LoadBytes([]byte(src), "p.hcl", LoadOptions{Environ: []string{}})
			got := FormatDiagnostics(diags)
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("unexpected diagnostics:\n%s", got)
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("diagnostics lack %q:\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
