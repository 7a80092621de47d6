// Package testutil holds helpers shared by tests: building the test
// component (and the flowctl binary) that tests run as real processes.
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Binaries are paths of freshly built executables.
type Binaries struct {
	// TestComponent is internal/testutil/testcomponent (see its doc for the
	// environment knobs), static (CGO_ENABLED=0).
	TestComponent string
	// Flowctl is ./cmd/flowctl, built only when WithFlowctl is passed,
	// with ./cmd/flowctl-shim beside it (FlowctlShim), as installed.
	Flowctl     string
	FlowctlShim string
	// SDKComponent is ./internal/testutil/sdkcomponent (a component built
	// on pkg/component that registers with the control plane), built only
	// when WithSDKComponent is passed.
	SDKComponent string
	// EcoComponent is ./internal/testutil/ecocomponent (components of the
	// ecosystem that send no token), built only when WithEcoComponent is
	// passed.
	EcoComponent string
	// Examples are the example components (examples/components/NAME) by
	// name, built only when WithExamples is passed.
	Examples map[string]string
}

// BuildOption selects optional binaries.
type BuildOption func(*buildOptions)

type buildOptions struct{ flowctl, sdk, examples, eco bool }

// WithEcoComponent also builds ./internal/testutil/ecocomponent.
func WithEcoComponent() BuildOption { return func(o *buildOptions) { o.eco = true } }

// WithFlowctl also builds ./cmd/flowctl into Binaries.Flowctl.
func WithFlowctl() BuildOption { return func(o *buildOptions) { o.flowctl = true } }

// WithExamples also builds the example components (counter-source,
// transform-processor, file-sink).
func WithExamples() BuildOption { return func(o *buildOptions) { o.examples = true } }

// WithSDKComponent also builds ./internal/testutil/sdkcomponent.
func WithSDKComponent() BuildOption { return func(o *buildOptions) { o.sdk = true } }

type built struct {
	once sync.Once
	path string
	err  error
}

var (
	testComponent built
	flowctl       built
	flowctlShim   built
	sdkComponent  built
	ecoComponent  built
	examples      = map[string]*built{"counter-source": {}, "transform-processor": {}, "file-sink": {}}
)

// BuildBinaries builds the binaries tests need and returns their paths. A
// failed build fails the test.
//
// Each binary is built at most once per test process (sync.Once) and then
// shared. The output goes to a fixed folder per checkout,
// $TMPDIR/flowctl-testbin-<hash of the module root>, which is left in place
// for reuse: nothing needs cleaning up, and test packages run in parallel
// can share it (each build writes a temporary file and renames it into
// place, so a binary another test is running is never overwritten in
// place). The test component, which imports only the standard library and
// pkg/contract, is named by the hash of their sources and reused as long as
// that exists;
// flowctl is rebuilt once per test process (the Go build cache makes that
// mostly a link).
func BuildBinaries(t testing.TB, opts ...BuildOption) Binaries {
	t.Helper()
	var o buildOptions
	for _, opt := range opts {
		opt(&o)
	}
	var b Binaries
	var err error
	if b.TestComponent, err = testComponent.get("./internal/testutil/testcomponent", "testcomponent", true); err != nil {
		t.Fatalf("build test component: %v", err)
	}
	if o.flowctl {
		if b.Flowctl, err = flowctl.get("./cmd/flowctl", "flowctl", false); err != nil {
			t.Fatalf("build flowctl: %v", err)
		}
		if b.FlowctlShim, err = flowctlShim.get("./cmd/flowctl-shim", "flowctl-shim", false); err != nil {
			t.Fatalf("build flowctl-shim: %v", err)
		}
	}
	if o.examples {
		b.Examples = map[string]string{}
		for name, bl := range examples {
			p, err := bl.get("./examples/components/"+name, name, false)
			if err != nil {
				t.Fatalf("build %s: %v", name, err)
			}
			b.Examples[name] = p
		}
	}
	if o.eco {
		if b.EcoComponent, err = ecoComponent.get("./internal/testutil/ecocomponent", "ecocomponent", false); err != nil {
			t.Fatalf("build eco component: %v", err)
		}
	}
	if o.sdk {
		if b.SDKComponent, err = sdkComponent.get("./internal/testutil/sdkcomponent", "sdkcomponent", false); err != nil {
			t.Fatalf("build sdk component: %v", err)
		}
	}
	return b
}

func (b *built) get(pkg, name string, standalone bool) (string, error) {
	b.once.Do(func() { b.path, b.err = build(pkg, name, standalone) })
	return b.path, b.err
}

// ModuleRoot returns the folder holding the flowctl go.mod.
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the flowctl module")
	}
	return filepath.Dir(gomod), nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := runtime.GOROOT(); root != "" { //nolint:staticcheck // a fallback only
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// build runs go build. A standalone package (one that imports nothing of
// the module but pkg/contract, like the test component) is keyed by the
// hash of its files, pkg/contract's and the Go version, and not rebuilt
// while a binary with that key exists: test processes then share it
// without even a link step.
func build(pkg, name string, standalone bool) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "flowctl-testbin-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, name)
	if standalone {
		key, err := sourceKey(filepath.Join(root, filepath.FromSlash(pkg)), filepath.Join(root, contractDir))
		if err != nil {
			return "", err
		}
		dst += "-" + key
		if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() {
			return dst, nil
		}
	}
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(goTool(), "build", "-o", tmp.Name(), pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	return dst, nil
}

// contractDir is the one module package a standalone package may import:
// the component contract's names, which the test component reads.
const contractDir = "pkg/contract"

// sourceKey hashes the files of package folders and the Go version.
func sourceKey(dirs ...string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "dir %s\n", filepath.Base(dir))
		for _, e := range ents { // sorted by name
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}
