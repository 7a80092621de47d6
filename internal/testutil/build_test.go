package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

func TestBuildTestComponent(t *testing.T) {
	b := BuildBinaries(t)
	if b.TestComponent == "" || b.Flowctl != "" {
		t.Fatalf("binaries = %+v", b)
	}
	cmd := exec.Command(b.TestComponent)
	cmd.Env = []string{"TC_EXIT_AFTER=10ms", "TC_EXIT_CODE=3", "TC_PRINT=hello {n};stderr:oops", "TC_PRINT_INTERVAL=1h"}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("err = %v, output:\n%s", err, out)
	}
	for _, want := range []string{"testcomponent starting", "hello 1", "oops", "exiting with code 3"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if again := BuildBinaries(t); again.TestComponent != b.TestComponent {
		t.Fatalf("second call built again: %+v", again)
	}
}
