package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/state"
)

// The docker executor is registered for every command, but contacts the
// engine only for pipelines that have docker components.

func TestDockerPipelineWithoutAnEngineFailsNamingTheSocket(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	dir := writeFiles(t, map[string]string{"pipeline.hcl": "pipeline \"dk\" {\n  executor = \"docker\"\n}\nsource \"a\" {\n  image = \"x:1\"\n}\n"})
	file := filepath.Join(dir, "pipeline.hcl")
	for _, args := range [][]string{{"plan", file}, {"apply", "-auto-approve", file}} {
		r := run(t, args...)
		r.wantCode(t, 1)
		if want := "cannot reach the Docker engine at unix:///nonexistent.sock (from DOCKER_HOST)"; !strings.Contains(r.err, want) {
			t.Errorf("%v: stderr lacks %q:\n%s", args, want, r.err)
		}
	}
	// Before it creates a state file, flowctl asks the engine what of the
	// pipeline runs; without an engine it creates none.
	if _, err := os.Stat(filepath.Join(dir, ".flowctl", "dk.state.db")); errors.Is(err, os.ErrNotExist) {
		return
	}
	st, err := state.Open(filepath.Join(dir, ".flowctl", "dk.state.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx *state.Tx) error {
		recs, err := tx.Components()
		if len(recs) != 0 || tx.Meta().Serial != 0 {
			t.Errorf("state was written: %d records, serial %d", len(recs), tx.Meta().Serial)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestProcessPipelineNeedsNoDockerEngine(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	dir := writeFiles(t, map[string]string{"pipeline.hcl": "pipeline \"pr\" {}\nsource \"a\" {\n  command = [\"/bin/true\"]\n}\n"})
	r := run(t, "plan", filepath.Join(dir, "pipeline.hcl"))
	r.wantCode(t, 0)
	if !strings.Contains(r.out, "1 to add") {
		t.Errorf("plan:\n%s", r.out)
	}
}

func TestValidateRejectsUntrustedAndUnpinnedImages(t *testing.T) {
	dir := writeFiles(t, map[string]string{"pipeline.yaml": `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: pinned
spec:
  driver: docker
  trusted_registries: [ghcr.io/acme]
  require_digest: true
  sources:
    - id: ledger
      image: docker.io/someone/ledger:latest
`})
	r := run(t, "validate", filepath.Join(dir, "pipeline.yaml"))
	r.wantCode(t, 1)
	for _, want := range []string{
		`source.ledger: image "docker.io/someone/ledger:latest" comes from docker.io/someone/ledger, which trusted_registries (ghcr.io/acme) does not list`,
		`source.ledger: the pipeline sets require_digest, and image "docker.io/someone/ledger:latest" is pinned neither by digest`,
	} {
		if !strings.Contains(r.err+r.out, want) {
			t.Errorf("validate output lacks %q:\n%s%s", want, r.out, r.err)
		}
	}
}
