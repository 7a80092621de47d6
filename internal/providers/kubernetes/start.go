package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// handle is the serialised Handle of a component's objects. It holds no
// secret: the token lives in the cluster's Secret only.
type handle struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace"`
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	// OwnsNamespace: flowctl created the namespace, and removes it once empty.
	OwnsNamespace bool   `json:"owns_namespace,omitempty"`
	Address       string `json:"address"`
	Pipeline      string `json:"pipeline"`
	Lineage       string `json:"lineage,omitempty"`
}

func (h handle) cluster() clusterKey { return clusterKey{h.Kubeconfig, h.Context} }

func decodeHandle(h providers.Handle) (handle, error) {
	var hd handle
	if err := json.Unmarshal(h, &hd); err != nil {
		return handle{}, fmt.Errorf("kubernetes: invalid handle: %w", err)
	}
	if hd.Name == "" || hd.Namespace == "" {
		return handle{}, errors.New("kubernetes: invalid handle: no name or namespace")
	}
	return hd, nil
}

func encodeHandle(hd handle) providers.Handle {
	b, _ := json.Marshal(hd)
	return b
}

// applyOptions are those of every server-side apply: flowctl's field
// manager, taking over fields someone else set (they are flowctl's).
func applyOptions(dryRun bool) metav1.ApplyOptions {
	o := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}
	return o
}

// Start implements providers.Provider: it applies the namespace (when
// flowctl owns it), the Secret, the workload and the Service, and returns
// once the API server accepted them; the rollout is the cluster's work,
// and readiness the caller's (Observe reports it).
func (p *Provider) Start(ctx context.Context, spec providers.ComponentSpec) (providers.Handle, error) {
	if spec.Component == nil {
		return nil, errors.New("kubernetes: start: no component")
	}
	k := p.cluster()
	c, err := p.client(k)
	if err != nil {
		return nil, err
	}
	ns, owned := p.Namespace(spec.Pipeline)
	if err := p.ensureNamespace(ctx, k, c, ns, owned, spec.Pipeline, false); err != nil {
		return nil, err
	}
	o := build(&spec, ns, p.endpoint(spec.Address(), spec.Env))
	hd := handle{Kind: o.kind, Name: o.name, Namespace: ns, Kubeconfig: k.Kubeconfig, Context: k.Context,
		OwnsNamespace: owned, Address: spec.Address(), Pipeline: spec.Pipeline, Lineage: spec.Lineage}
	if err := p.replaceOtherKind(ctx, c, hd); err != nil {
		return nil, err
	}
	if _, err := p.applyObjects(ctx, k, c, o, false, false); err != nil {
		return nil, err
	}
	return encodeHandle(hd), nil
}

// endpoint is the control plane's address as pods reach it: the advertise
// address when set; a loopback one is passed as is, with a warning.
func (p *Provider) endpoint(addr string, env map[string]string) string {
	if s := p.opts.Settings; s != nil && s.Advertise != "" {
		return s.Advertise
	}
	v := env[contract.EnvEndpoint]
	if host, _, err := net.SplitHostPort(v); err == nil {
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
			p.log.Warn("the control-plane endpoint is a loopback address, which a pod cannot reach; set kubernetes { advertise } to an address the cluster can reach",
				"component", addr, "endpoint", v)
		}
	}
	return ""
}

// ensureNamespace makes sure ns exists and is not terminating; flowctl
// creates it (labelled as its own) when it owns it.
func (p *Provider) ensureNamespace(ctx context.Context, k clusterKey, c k8s.Interface, ns string, owned bool, pipeline string, dryRun bool) error {
	got, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case err == nil && got.Status.Phase == corev1.NamespaceTerminating:
		return fmt.Errorf("namespace %s is terminating: wait until it is gone, then apply again", ns)
	case err == nil:
		return nil
	case !apierrors.IsNotFound(err):
		return p.explain(k, "get", "namespaces", ns, err)
	case !owned:
		return fmt.Errorf("namespace %s (from the pipeline's kubernetes.namespace or metadata.namespace) does not exist: create it, or leave the namespace out to let flowctl make one", ns)
	}
	nsac := corev1ac.Namespace(ns).WithLabels(map[string]string{LabelManagedBy: FieldManager, LabelNamespaceOwner: pipeline})
	_, err = c.CoreV1().Namespaces().Apply(ctx, nsac, applyOptions(dryRun))
	return p.explain(k, "apply", "namespaces", ns, err)
}

// applied are the objects as the API server returned them from an apply.
type applied struct {
	secret, workload, service runtime.Object
}

// applyObjects applies the Secret, the workload and the Service, in that
// order (the pods reference the Secret). skipWorkload leaves the workload
// out (a dry run against a Job that apply replaces rather than updates).
func (p *Provider) applyObjects(ctx context.Context, k clusterKey, c k8s.Interface, o *objects, dryRun, skipWorkload bool) (applied, error) {
	var out applied
	opts := applyOptions(dryRun)
	sec, err := c.CoreV1().Secrets(o.ns).Apply(ctx, o.secret, opts)
	if err != nil {
		return out, p.explain(k, "apply", "secrets", o.ns, err)
	}
	out.secret = sec
	switch {
	case skipWorkload:
	case o.kind == KindJob:
		j, err := c.BatchV1().Jobs(o.ns).Apply(ctx, o.job, opts)
		if err != nil {
			return out, p.explain(k, "apply", "jobs", o.ns, err)
		}
		out.workload = j
	default:
		d, err := c.AppsV1().Deployments(o.ns).Apply(ctx, o.deployment, opts)
		if err != nil {
			return out, p.explain(k, "apply", "deployments", o.ns, err)
		}
		out.workload = d
	}
	svc, err := c.CoreV1().Services(o.ns).Apply(ctx, o.service, opts)
	if err != nil {
		return out, p.explain(k, "apply", "services", o.ns, err)
	}
	out.service = svc
	return out, nil
}

// replaceOtherKind removes what stands in the way of the workload about to
// be applied: a workload of the other kind under the same name (the
// restart policy changed), or a Job of this name (a Job's pod template
// cannot change: each start is a new Job).
func (p *Provider) replaceOtherKind(ctx context.Context, c k8s.Interface, hd handle) error {
	for _, kind := range []string{KindDeployment, KindJob} {
		if kind == hd.Kind && kind == KindDeployment {
			continue
		}
		other := hd
		other.Kind = kind
		w, err := p.getWorkload(ctx, c, other)
		if err != nil {
			return err
		}
		if w == nil {
			continue
		}
		if err := p.deleteWorkload(ctx, c, other, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}
