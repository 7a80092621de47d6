package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bind mount's missing host folder is created by apply (of a saved plan
// here) before anything starts, as Compose does, and the plan says so
// first.
func TestDockerApplyCreatesMissingHostFolder(t *testing.T) {
	df := newDockerFixture(t)
	cs := []dcomp{
		{kind: "source", id: "gen"},
		{kind: "processor", id: "mid", inputs: []string{"source.gen"}},
		{kind: "sink", id: "out", inputs: []string{"processor.mid"},
			extra: "  volume {\n    host_path      = \"out/data\"\n    container_path = \"/data\"\n  }\n"},
	}
	df.writeDocker(cs)
	folder := df.path("out/data")

	r := df.must(0, "plan")
	if !strings.Contains(r.out, "host folder ./out/data will be created (a volume of sink.out)") {
		t.Fatalf("the plan does not say the host folder will be created\n%s", r)
	}
	if _, err := os.Stat(folder); !os.IsNotExist(err) {
		t.Fatalf("plan touched the file system: stat %s: %v", folder, err)
	}
	// A saved plan carries the folder to create, relative to the pipeline.
	df.must(0, "plan", "-out", "tf.plan")
	if r := df.must(0, "show", "-json", "tf.plan"); !strings.Contains(r.out, `"host_folders"`) {
		t.Fatalf("the saved plan does not list the host folder\n%s", r)
	}
	df.must(0, "apply", "tf.plan")
	fi, err := os.Stat(folder)
	if err != nil || !fi.IsDir() {
		t.Fatalf("after apply, %s: %v %v", folder, fi, err)
	}
	if perm := fi.Mode().Perm(); perm != 0o755 {
		t.Errorf("host folder mode %o, want 755", perm)
	}
	df.assertDockerConverged(daddrs(cs))
	if r := df.must(0, "plan"); strings.Contains(r.out, "host folder") {
		t.Errorf("a plan after apply still mentions the host folder\n%s", r)
	}
	df.must(0, "destroy", "-auto-approve")
	df.assertNothingLeft()
}

// A host folder that cannot be created (its parent is a regular file)
// fails the plan at host_path's position, and apply starts nothing.
func TestDockerHostFolderUnderAFileFailsAtPlan(t *testing.T) {
	df := newDockerFixture(t)
	cs := []dcomp{
		{kind: "source", id: "gen"},
		{kind: "sink", id: "out", inputs: []string{"source.gen"},
			extra: "  volume {\n    host_path      = \"blocker/data\"\n    container_path = \"/data\"\n  }\n"},
	}
	df.writeDocker(cs)
	df.write("blocker", "a regular file\n")
	src, err := os.ReadFile(df.path("pipeline.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "host_path") {
			line = i + 1
		}
	}
	want := "pipeline.hcl:" + itoa(line) + ":"
	for _, cmd := range [][]string{{"plan"}, {"apply", "-auto-approve"}} {
		r := df.must(1, cmd...)
		if !strings.Contains(r.err, want) || !strings.Contains(r.err, "sink.out: volume 0: host_path \"blocker/data\"") ||
			!strings.Contains(r.err, "is a file, not a folder") {
			t.Errorf("%v: want an error at %s naming the volume and the file in the way\n%s", cmd, want, r)
		}
	}
	if bs := df.boxes(); len(bs) > 0 {
		t.Errorf("containers started although the plan failed: %+v", bs)
	}
	if recs := df.records(); len(recs) > 0 {
		t.Errorf("state records %d components although the plan failed", len(recs))
	}
	if _, err := os.Stat(filepath.Join(df.dir, "blocker")); err != nil {
		t.Errorf("the file in the way: %v", err)
	}
}
