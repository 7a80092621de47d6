// Package k8stest starts the project's throwaway Kubernetes cluster
// (scripts/k8s/up.sh: a real API server, controllers and scheduler, with
// kwok playing the nodes) for the tests of a package: one cluster per test
// binary, started on first use and stopped by Main, and a namespace per
// test.
//
// Without the cluster's programs built (scripts/k8s/build.sh, 10-20
// minutes the first time) the tests skip, except under CI=true, where they
// build them, and fail when the cluster cannot start.
package k8stest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is a running test cluster.
type Cluster struct {
	// Dir holds everything of the cluster (logs/, kubeconfig, ...).
	Dir string
	// Kubeconfig is an admin kubeconfig file.
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	// Kubectl is the kubectl the build made.
	Kubectl string
	// PodLog is the file every pod's log is served from (CRI format).
	PodLog string
}

// The package's one cluster (a test binary is one package).
var (
	once    sync.Once
	shared  *Cluster
	started string // Dir to stop, once started
	upErr   error
	mu      sync.Mutex
)

// Scripts is the folder of the project's cluster scripts.
func Scripts() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "k8s"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// CacheDir is where build.sh keeps the programs.
func CacheDir() string {
	if d := os.Getenv("FLOWCTL_K8S_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "flowctl-k8s")
}

// Built reports whether the cluster's programs are built.
func Built() bool {
	for _, p := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"} {
		if _, err := os.Stat(filepath.Join(CacheDir(), "bin", p)); err != nil {
			return false
		}
	}
	return true
}

// inCI reports CI=true: a missing cluster fails rather than skips.
func inCI() bool { return os.Getenv("CI") == "true" }

// Main runs the tests and stops the cluster if one was started. Use it as
// TestMain: func TestMain(m *testing.M) { os.Exit(k8stest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	dir := started
	mu.Unlock()
	if dir != "" {
		if s, err := Scripts(); err == nil {
			_ = exec.Command("bash", filepath.Join(s, "down.sh"), dir).Run()
		}
		_ = os.RemoveAll(filepath.Dir(dir))
	}
	return code
}

// Shared returns the package's cluster, starting it on first use. It skips
// the test under -short, and when the programs are not built outside CI.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("a Kubernetes cluster test (skipped under -short)")
	}
	if !Built() && !inCI() {
		t.Skipf("the test cluster's programs are not built: run scripts/k8s/build.sh (10-20 minutes once), or set CI=true to build them here")
	}
	once.Do(func() { shared, upErr = up() })
	if upErr != nil {
		t.Fatalf("start the test cluster: %v", upErr)
	}
	return shared
}

func up() (*Cluster, error) {
	scripts, err := Scripts()
	if err != nil {
		return nil, err
	}
	parent, err := os.MkdirTemp("", "flowctl-k8s-")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(parent, "cluster")
	mu.Lock()
	started = dir
	mu.Unlock()
	cmd := exec.Command("bash", filepath.Join(scripts, "up.sh"), dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("up.sh: %v\n%s", err, stderr.String())
	}
	watchdog(scripts, dir)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	kubeconfig := strings.TrimPrefix(lines[len(lines)-1], "KUBECONFIG=")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Cluster{Dir: dir, Kubeconfig: kubeconfig, Config: cfg, Client: client,
		Kubectl: filepath.Join(CacheDir(), "bin", "kubectl"), PodLog: filepath.Join(dir, "logs", "pod.log")}, nil
}

// watchdog stops the cluster in dir once this test process is gone, in
// case it dies without running Main's cleanup (killed at -timeout): a
// detached shell polls for the process, then runs down.sh. When Main has
// stopped the cluster already, down.sh finds nothing to do.
func watchdog(scripts, dir string) {
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 2; done; bash %q %q; rmdir %q 2>/dev/null",
		os.Getpid(), filepath.Join(scripts, "down.sh"), dir, filepath.Dir(dir))
	cmd := exec.Command("setsid", "bash", "-c", script)
	if err := cmd.Start(); err == nil {
		go func() { _ = cmd.Wait() }()
	}
}

// Name returns a fresh DNS-label name with prefix, for a namespace or a
// pipeline of one test.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Namespace creates a namespace of the test's own, deleted when it ends,
// and waits for its default ServiceAccount.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	ns := Name("t")
	ctx := context.Background()
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		_ = c.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return ns
		}
		if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			t.Fatalf("namespace %s: no default ServiceAccount: %v", ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// AppendPodLog appends lines to the file every pod's log is served from,
// in the CRI format kwok reads, stamped now.
func (c *Cluster) AppendPodLog(t testing.TB, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(c.PodLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := fmt.Fprintf(f, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), l); err != nil {
			t.Fatal(err)
		}
	}
}
