// Package kubernetes runs pipeline components on a Kubernetes cluster
// through its API (k8s.io/client-go), by server-side apply with the field
// manager "flowctl".
//
// # What a component becomes
//
// In the pipeline's namespace (kubernetes.namespace, else the pipeline's
// metadata.namespace, else one named after the pipeline that flowctl
// creates, labels as its own and removes once empty), a component named ID
// of pipeline P is:
//
//   - a Deployment P-ID with `replicas` pods, when its restart policy is
//     always (or unless-stopped): the cluster restarts its containers;
//   - a Job P-ID, when its restart policy is never or on-failure: a
//     Deployment's pods can only restart always, while a Job's pod template
//     takes restartPolicy Never or OnFailure, and its backoffLimit is
//     max_retries (0 for never). A Job rather than a bare Pod, because a
//     Job's controller makes a new pod when its node is lost and keeps the
//     outcome once the pod is gone;
//   - a Service P-ID in front of its pods, with a port for PORT, one for
//     HEALTH_PORT and one for each declared port, so that references
//     (`${source.x.address}`) resolve to P-ID.NAMESPACE.svc:PORT;
//   - a Secret P-ID-flowctl holding the component token and the sensitive
//     env values, which the pod's env references (secretKeyRef): no token
//     or sensitive value is ever a literal in the workload, the plan or the
//     state.
//
// Every object carries app.kubernetes.io/managed-by=flowctl and the labels
// flowctl.io/pipeline, flowctl.io/component (the address) and
// flowctl.io/lineage; the workload carries the spec hash and the replicas
// flowctl asked for as annotations, and its pod template the instance id,
// so that each start of a component rolls its pods.
//
// Health probes become readiness probes (and liveness probes when
// `liveness` is set); the cluster runs them and restarts containers itself
// (providers.SelfRestarter): the restart watcher only observes. A
// component is ready when its rollout is complete (every replica updated
// and available); a pod that cannot start (ImagePullBackOff,
// CrashLoopBackOff, unschedulable, a failed container) makes it not
// running, with the pods' reasons as detail.
//
// The control-plane endpoint handed to pods is kubernetes.advertise when
// set: a loopback FLOWCTL_ENDPOINT means nothing inside a pod.
package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
)

// Name is the executor name of this provider.
const Name = config.ExecutorKubernetes

// FieldManager is the server-side apply field manager of every object.
const FieldManager = "flowctl"

// Options configure the provider.
type Options struct {
	// Settings is the pipeline's kubernetes block; nil when it has none.
	Settings *config.Kubernetes
	// PipelineNamespace is the pipeline's metadata.namespace.
	PipelineNamespace string
	// WorkDir is the pipeline file's folder: a relative kubeconfig resolves
	// there.
	WorkDir string
	// PollInterval is how often Stop looks again (default 100ms).
	PollInterval time.Duration
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

// Provider runs components as Kubernetes workloads.
type Provider struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	clients map[clusterKey]*k8s.Clientset
}

// clusterKey says which cluster: the kubeconfig file and context.
type clusterKey struct{ Kubeconfig, Context string }

var (
	_ providers.Provider        = (*Provider)(nil)
	_ providers.AddressResolver = (*Provider)(nil)
	_ providers.SelfRestarter   = (*Provider)(nil)
	_ providers.Preflighter     = (*Provider)(nil)
	_ providers.PlanChecker     = (*Provider)(nil)
	_ providers.ReplaceStopper  = (*Provider)(nil)
)

// New returns a kubernetes provider. It contacts nothing.
func New(opts Options) *Provider {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Provider{opts: opts, log: log.With("executor", Name), clients: map[clusterKey]*k8s.Clientset{}}
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// RestartsItself implements providers.SelfRestarter: the cluster restarts
// containers and runs probes; the watcher observes.
func (p *Provider) RestartsItself() bool { return true }

// cluster is the kubeconfig and context of the pipeline's settings.
func (p *Provider) cluster() clusterKey {
	s := p.opts.Settings
	if s == nil {
		return clusterKey{}
	}
	k := clusterKey{Kubeconfig: s.Kubeconfig, Context: s.Context}
	if k.Kubeconfig != "" {
		if strings.HasPrefix(k.Kubeconfig, "~/") {
			if home, err := os.UserHomeDir(); err == nil {
				k.Kubeconfig = filepath.Join(home, k.Kubeconfig[2:])
			}
		}
		if !filepath.IsAbs(k.Kubeconfig) && p.opts.WorkDir != "" {
			k.Kubeconfig = filepath.Join(p.opts.WorkDir, k.Kubeconfig)
		}
	}
	return k
}

// Namespace is where the pipeline's objects live, and whether flowctl
// owns it (creates it and removes it once empty).
func (p *Provider) Namespace(pipeline string) (ns string, owned bool) {
	if s := p.opts.Settings; s != nil && s.Namespace != "" {
		return s.Namespace, false
	}
	if p.opts.PipelineNamespace != "" {
		return strings.ToLower(p.opts.PipelineNamespace), false
	}
	return strings.ToLower(pipeline), true
}

// restConfig loads the kubeconfig of k.
func restConfig(k clusterKey) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	from := "KUBECONFIG"
	if os.Getenv("KUBECONFIG") == "" {
		from = "~/.kube/config"
	}
	if k.Kubeconfig != "" {
		rules.ExplicitPath, from = k.Kubeconfig, "kubernetes.kubeconfig"
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.Context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, from, fmt.Errorf("kubernetes: load the kubeconfig (%s): %w", from, err)
	}
	// Applies of many components go out at once: client-go's default of 5
	// requests a second would serialise them.
	cfg.QPS, cfg.Burst = 200, 400
	cfg.Timeout = 30 * time.Second
	return cfg, from, nil
}

// client returns the clientset of k, made on first use (contacting nothing).
func (p *Provider) client(k clusterKey) (*k8s.Clientset, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.clients[k]; c != nil {
		return c, nil
	}
	cfg, _, err := restConfig(k)
	if err != nil {
		return nil, err
	}
	c, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	p.clients[k] = c
	return c, nil
}

// UnreachableError reports that the API server could not be reached.
type UnreachableError struct {
	Server, From string
	Err          error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Kubernetes API server at %s (from %s): %v (is the cluster up? set kubernetes { kubeconfig, context } in the pipeline, or KUBECONFIG)", e.Server, e.From, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// explain turns an API error into one in the provider's terms: an
// unreachable server is named, a refusal by RBAC names the verb and the
// resource, a terminating namespace says so.
func (p *Provider) explain(k clusterKey, verb, resource, ns string, err error) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	var se apierrors.APIStatus
	switch {
	case errors.As(err, &ne) || (!errors.As(err, &se) && isConnError(err)):
		cfg, from, _ := restConfig(k)
		server := "?"
		if cfg != nil {
			server = cfg.Host
		}
		return &UnreachableError{Server: server, From: from, Err: err}
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "because it is being terminated"):
		return fmt.Errorf("namespace %s is terminating: wait until it is gone, then apply again: %w", ns, err)
	case apierrors.IsForbidden(err):
		if verb == "apply" {
			verb = "patch" // server-side apply is a patch to RBAC
		}
		return fmt.Errorf("forbidden by Kubernetes: %s %s in namespace %s (RBAC: grant the verb %q on %q to the user of the kubeconfig; docs/executors/kubernetes.md lists the Role flowctl needs): %w", verb, resource, ns, verb, resource, err)
	}
	return fmt.Errorf("%s %s in namespace %s: %w", verb, resource, ns, err)
}

func isConnError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") || strings.Contains(s, "i/o timeout") || strings.Contains(s, "dial tcp")
}

// ComponentAddress implements providers.AddressResolver: the Service's
// DNS name in the cluster.
func (p *Provider) ComponentAddress(pipeline string, c *config.Component, port int) string {
	ns, _ := p.Namespace(pipeline)
	return net.JoinHostPort(ObjectName(pipeline, c.ID)+"."+ns+".svc", strconv.Itoa(port))
}

// ObjectName is the name of a component's workload and Service:
// PIPELINE-ID in lower case. A name longer than a Service's 63 characters
// keeps the id whole and shortens the pipeline's part, with 8 hex digits
// of a hash of the whole name between them, so that it stays unique.
// Nothing else is changed: a name the API server refuses (an id with '_')
// is an error at plan, by its dry run.
func ObjectName(pipeline, id string) string {
	name := strings.ToLower(pipeline + "-" + id)
	if len(name) <= maxName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	tag := "-" + hex.EncodeToString(sum[:4]) + "-"
	lid := strings.ToLower(id)
	keep := maxName - len(tag) - len(lid)
	if keep < 1 {
		return strings.TrimRight(name[:maxName-len(tag)+1], "-") + tag[:len(tag)-1]
	}
	return strings.TrimRight(name[:keep], "-") + tag + lid
}

// maxName is the longest Service name (an RFC 1035 label), which a Job's
// name must also respect (it becomes a pod label value).
const maxName = 63

// Preflight implements providers.Preflighter: the API server answers and
// the namespace is not terminating, before an apply changes anything.
func (p *Provider) Preflight(ctx context.Context, components []*config.Component) error {
	if len(components) == 0 {
		return nil
	}
	k := p.cluster()
	c, err := p.client(k)
	if err != nil {
		return err
	}
	if _, err := c.Discovery().ServerVersion(); err != nil {
		return p.explain(k, "get", "version", "-", err)
	}
	return nil
}
