package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/providers/nomad/nomadtest"
	"github.com/flowctl/flowctl/internal/testutil"
)

// The YAML and HCL forms of each example give the same plan, byte for byte,
// leaving out what differs between any two state files (lineage) and file
// paths and times (a plan -json has none). Plan starts nothing, so the
// examples' images and binaries need not exist. Nomad examples are planned
// against the Nomad API emulator (NOMAD_ADDR). An executor that is not
// available (a machine may have no Docker engine) cannot be asked about
// reality: such an example is planned with -refresh=false, from the file
// and the state alone.
func TestExamplesPlanTheSameFromYAMLAndHCL(t *testing.T) {
	t.Setenv("NOMAD_ADDR", nomadtest.Start(t, nomadtest.Options{}).URL())
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "examples", "*"))
	pairs := 0
	for _, dir := range dirs {
		name := filepath.Base(dir)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			var plans []string
			for _, file := range []string{"pipeline.yaml", "pipeline.hcl"} {
				src, err := os.ReadFile(filepath.Join(dir, file))
				if os.IsNotExist(err) {
					continue
				} else if err != nil {
					t.Fatal(err)
				}
				// Each form in a folder of its own, so each has its own state.
				sub := filepath.Join(f.dir, strings.TrimPrefix(filepath.Ext(file), "."))
				if err := os.MkdirAll(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(sub, file), src, 0o644); err != nil {
					t.Fatal(err)
				}
				args := []string{"plan", "-json", file}
				r := f.runIn(sub, args...)
				if r.code != 0 && (strings.Contains(r.err, "no executor") || strings.Contains(r.err, "cannot reach the Docker engine")) {
					t.Logf("%s: %s", file, firstLine(r.err))
					args = append(args, "-refresh=false")
					r = f.runIn(sub, args...)
				}
				if r.code != 0 {
					t.Fatalf("%s", r)
				}
				plans = append(plans, withoutLineage(t, r.out))
				if n := len(strings.Fields(r.out)); n < 10 {
					t.Fatalf("%s: tiny plan\n%s", file, r.out)
				}
			}
			switch len(plans) {
			case 1:
				t.Logf("only one form: planned it")
			case 2:
				pairs++
				if plans[0] != plans[1] {
					t.Fatalf("plan -json differs between pipeline.yaml and pipeline.hcl\n--- yaml\n%s\n--- hcl\n%s", plans[0], plans[1])
				}
			}
		})
	}
	if pairs == 0 {
		t.Fatal("no example has both forms")
	}
}

// withoutLineage replaces the state lineage, the one value that differs
// between two state files, and leaves every other byte as it is.
func withoutLineage(t *testing.T, planJSON string) string {
	t.Helper()
	var p struct {
		Lineage string `json:"lineage"`
	}
	if err := json.Unmarshal([]byte(planJSON), &p); err != nil {
		t.Fatalf("plan -json does not decode (%v)\n%s", err, planJSON)
	}
	if p.Lineage == "" {
		// A plan made with no state names no lineage (plan mints none).
		return planJSON
	}
	return strings.ReplaceAll(planJSON, p.Lineage, "LINEAGE")
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
