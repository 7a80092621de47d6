package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestVersionPrintsTheBuild(t *testing.T) {
	r := run(t, "version")
	r.wantCode(t, 0)
	if !strings.HasPrefix(r.out, "flowctl 1.2.3\ncommit abc1234\ngo") {
		t.Errorf("got %q", r.out)
	}
}

func TestVersionJSONHasVersionAndCommit(t *testing.T) {
	r := run(t, "version", "-json")
	r.wantCode(t, 0)
	var v versionInfo
	if err := json.Unmarshal([]byte(r.out), &v); err != nil {
		t.Fatalf("%v: %s", err, r.out)
	}
	if v.Version != "1.2.3" || v.Commit != "abc1234" || v.GoVersion == "" || v.Platform == "" {
		t.Errorf("got %+v", v)
	}
}

func TestVersionDefaultsToDevWithoutLdflags(t *testing.T) {
	if v := currentVersion(BuildInfo{}); v.Version != "dev" || v.Commit == "" {
		t.Errorf("got %+v", v)
	}
}

func TestRootVersionFlag(t *testing.T) {
	r := run(t, "--version")
	r.wantCode(t, 0)
	if r.out != "flowctl 1.2.3\n" {
		t.Errorf("got %q", r.out)
	}
}
