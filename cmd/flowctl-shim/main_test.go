//go:build linux

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShimStaysLean guards what makes this binary worth having: it links
// the shim and the standard library, nothing of flowctl's heavier
// dependencies (each adds start-up time to every component start).
func TestShimStaysLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/flowctl/flowctl/cmd/flowctl-shim":                true,
		"github.com/flowctl/flowctl/internal/providers/process/shim": true,
		"github.com/flowctl/flowctl/internal/procinfo":               true,
		"github.com/flowctl/flowctl/pkg/contract":                    true, // names only; the standard library
		"golang.org/x/sys/unix":                                      true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(pkg, "/")
		if strings.Contains(first, ".") && !allowed[pkg] {
			t.Errorf("flowctl-shim links %s", pkg)
		}
	}
}
