package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

// dockerStateFixture is a real state file listing three docker components
// of pipeline dk, as an apply would have written it.
func dockerStateFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	statePath := filepath.Join(dir, ".flowctl", "dk.state.db")
	if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(statePath, "dk")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	err = st.Update(func(tx *state.Tx) error {
		for i, addr := range []string{"source.a", "processor.b", "sink.c"} {
			kind, id, _ := strings.Cut(addr, ".")
			h := json.RawMessage(fmt.Sprintf(`{"container_id":"%064d","name":"flowctl-dk-%s","address":%q,"pipeline":"dk"}`, i+1, id, addr))
			rec := &state.Record{Address: addr, Kind: kind, ID: id, Provider: "docker", Handle: h, InstanceID: addr + "-1", Status: state.StatusRunning, StartedAt: t0}
			if err := tx.PutComponent(rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return statePath
}

// Without a Docker engine the logs of docker components cannot be read:
// logs says so once and fails, rather than warning per component and
// exiting 0 as if the logs were empty.
func TestLogsWithoutADockerEngineFailsOnce(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "dead.sock"))
	statePath := dockerStateFixture(t)
	r := run(t, "logs", "--state", statePath)
	r.wantCode(t, 1)
	if n := strings.Count(r.err, "cannot reach the Docker engine"); n != 1 {
		t.Errorf("the engine's absence is told %d times, want once:\n%s", n, r.err)
	}
	if r.out != "" {
		t.Errorf("stdout: %q", r.out)
	}
}

// serve on a port another process holds fails naming the address, and
// never says it is ready first.
func TestServeOnABusyPortIsNotReadyFirst(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := writeFiles(t, map[string]string{"pipeline.hcl": "pipeline \"sv\" {}\nsource \"a\" {\n  command = [\"/bin/true\"]\n}\n"})
	r := run(t, "serve", "--listen", busy.Addr().String(), "--http", "none", "--no-docker-gateway", "--no-restart-watcher", filepath.Join(dir, "pipeline.hcl"))
	r.wantCode(t, 1)
	if !strings.Contains(r.err, "address already in use") {
		t.Errorf("stderr lacks the bind error:\n%s", r.err)
	}
	if strings.Contains(r.err, "control plane ready") || strings.Contains(r.err, "serving") || strings.Contains(r.err, "level=INFO") {
		t.Errorf("serve claimed to be ready before it could listen:\n%s", r.err)
	}
}

const firstContactPipeline = "pipeline \"fc\" {}\nsource \"a\" {\n  command = [\"/bin/sleep\", \"60\"]\n}\n"

// show names what it needs, and tells a pipeline file from a plan.
func TestShowSaysWhatItNeeds(t *testing.T) {
	r := run(t, "show")
	r.wantCode(t, 1)
	if want := "Error: show needs one argument, a plan file saved with 'flowctl plan -out FILE' (got 0)\n"; r.err != want {
		t.Errorf("show without argument:\n%s", r.err)
	}
	dir := writeFiles(t, map[string]string{"pipeline.hcl": firstContactPipeline})
	file := filepath.Join(dir, "pipeline.hcl")
	r = run(t, "show", file)
	r.wantCode(t, 1)
	if want := fmt.Sprintf("Error: %s is a pipeline file, not a saved plan: 'flowctl plan %s' shows its plan", file, file); !strings.HasPrefix(r.err, want) {
		t.Errorf("show PIPELINE:\n%s", r.err)
	}
}

// A saved plan that was cut short or overwritten in part is reported as a
// damaged plan by show and apply, not read as a pipeline file with a syntax
// error; apply then starts nothing and writes no state.
func TestDamagedPlanFileIsReportedAsSuch(t *testing.T) {
	dir := writeFiles(t, map[string]string{"pipeline.hcl": firstContactPipeline})
	file := filepath.Join(dir, "pipeline.hcl")
	planPath := filepath.Join(dir, "tf.plan")
	run(t, "plan", "-out", planPath, file).wantCode(t, 0)
	b, err := os.ReadFile(planPath)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 64)
	for i := range garbage {
		garbage[i] = byte(i*37 + 1)
	}
	damaged := map[string][]byte{
		"truncated.plan": b[:len(b)/2],
		"overwritten":    append(append([]byte{}, b[:40]...), garbage...),
		"garbage.tfplan": garbage,
	}
	for name, content := range damaged {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"show", "apply"} {
			r := run(t, cmd, path)
			r.wantCode(t, 1)
			if want := "Error: " + path + " is a damaged plan file ("; !strings.HasPrefix(r.err, want) || strings.Contains(r.err, "syntax") {
				t.Errorf("%s %s:\n%s", cmd, name, r.err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".flowctl", "fc.state.db")); err == nil {
		st, err := state.Open(filepath.Join(dir, ".flowctl", "fc.state.db"), "")
		if err != nil {
			t.Fatal(err)
		}
		_ = st.View(func(tx *state.Tx) error {
			if recs, _ := tx.Components(); len(recs) != 0 {
				t.Errorf("a damaged plan started %d components", len(recs))
			}
			return nil
		})
	}
}

// destroy, and plan -destroy, with nothing to destroy say so, not that the
// pipeline matches its configuration.
func TestDestroyWithNothingToDestroy(t *testing.T) {
	dir := writeFiles(t, map[string]string{"pipeline.hcl": firstContactPipeline})
	file := filepath.Join(dir, "pipeline.hcl")
	for _, args := range [][]string{{"destroy", "-auto-approve", file}, {"plan", "-destroy", file}} {
		r := run(t, args...)
		r.wantCode(t, 0)
		if r.out != "No components to destroy.\n" {
			t.Errorf("%v:\n%s", args, r.out)
		}
	}
}

// A pathologically nested HCL file is refused with its position by every
// command that reads it, without a Go stack overflow.
func TestDeeplyNestedHCLIsACleanError(t *testing.T) {
	const n = 100000
	dir := writeFiles(t, map[string]string{"pipeline.hcl": "pipeline \"d\" {}\nlocals {\n  x = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n}\n"})
	file := filepath.Join(dir, "pipeline.hcl")
	for _, args := range [][]string{{"validate", file}, {"plan", file}, {"fmt", "-check", file}} {
		r := run(t, args...)
		r.wantCode(t, 1)
		// validate prints its diagnostics on stdout, the others on stderr.
		if got := r.out + r.err; !strings.Contains(got, "Nesting too deep") || !strings.Contains(got, file+":3:1006") {
			t.Errorf("%v:\n%.500s", args, got)
		}
	}
}
