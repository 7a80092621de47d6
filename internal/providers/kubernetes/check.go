package kubernetes

import (
	"context"
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Placeholder ports of a dry run: the ports apply allocates are not known
// at plan.
const (
	dryRunPort       = 10000
	dryRunHealthPort = 10001
)

// CheckPlan implements providers.PlanChecker: every object the components
// would become is sent to the API server as a server-side dry run, so that
// what it would refuse (an invalid name, a ResourceQuota exceeded, an
// admission webhook's veto, a field it rejects) fails the plan. When the
// namespace does not exist yet, its creation is dry-run and the objects
// are dry-run in "default": names and fields are judged, the new
// namespace's quotas cannot be.
//
// For a component whose objects exist, the dry run's result is compared
// with the live objects, and the paths the API server would change are
// returned by address (paths only: a Secret's values never leave it).
func (p *Provider) CheckPlan(ctx context.Context, pl *config.Pipeline, components []*config.Component) (map[string][]string, error) {
	if len(components) == 0 {
		return nil, nil
	}
	k := p.cluster()
	c, err := p.client(k)
	if err != nil {
		return nil, err
	}
	ns, owned := p.Namespace(pl.Name)
	standIn := false
	if _, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		if err := p.ensureNamespace(ctx, k, c, ns, owned, pl.Name, true); err != nil {
			return nil, err
		}
		ns, standIn = "default", true
	} else if err := p.ensureNamespace(ctx, k, c, ns, owned, pl.Name, true); err != nil {
		return nil, err
	}
	changes := map[string][]string{}
	for _, comp := range components {
		var cur *live
		if !standIn {
			if cur, err = p.readLive(ctx, k, c, ns, ObjectName(pl.Name, comp.ID)); err != nil {
				return nil, fmt.Errorf("%s: %w", comp.Address(), err)
			}
		}
		spec := dryRunSpec(pl, comp, cur)
		o := build(&spec, ns, p.advertise())
		// A Job is not updated but replaced (apply deletes it first): its
		// template, immutable, is judged as a new one's would be.
		skip := cur != nil && o.kind == KindJob && cur.job != nil
		got, err := p.applyObjects(ctx, k, c, o, true, skip)
		if err != nil && standIn && apierrors.IsForbidden(err) {
			// "default" only stood in for a namespace not made yet: a
			// user without rights there is not refused for it.
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", comp.Address(), err)
		}
		if cur == nil || !cur.exists(o.kind) {
			continue
		}
		paths, err := cur.diff(o.kind, got)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", comp.Address(), err)
		}
		if len(paths) > 0 {
			changes[comp.Address()] = paths
		}
	}
	return changes, nil
}

// advertise is the configured advertise address, or "".
func (p *Provider) advertise() string {
	if s := p.opts.Settings; s != nil {
		return s.Advertise
	}
	return ""
}

// live holds a component's objects as they are in the cluster; nil fields
// do not exist.
type live struct {
	secret     *corev1.Secret
	deployment *appsv1.Deployment
	job        *batchv1.Job
	service    *corev1.Service
}

// readLive reads the objects named name in ns; nil when its workload does
// not exist.
func (p *Provider) readLive(ctx context.Context, k clusterKey, c k8s.Interface, ns, name string) (*live, error) {
	var l live
	var err error
	if l.deployment, err = c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, p.explain(k, "get", "deployments", ns, err)
		}
		l.deployment = nil
	}
	if l.job, err = c.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, p.explain(k, "get", "jobs", ns, err)
		}
		l.job = nil
	}
	if l.deployment == nil && l.job == nil {
		return nil, nil
	}
	if l.secret, err = c.CoreV1().Secrets(ns).Get(ctx, secretName(name), metav1.GetOptions{}); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, p.explain(k, "get", "secrets", ns, err)
		}
		l.secret = nil
	}
	if l.service, err = c.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, p.explain(k, "get", "services", ns, err)
		}
		l.service = nil
	}
	return &l, nil
}

// exists says whether the workload of kind is there to be updated.
func (l *live) exists(kind string) bool {
	if kind == KindJob {
		return false // replaced, never updated
	}
	return l.deployment != nil
}

// meta and template are the live workload's.
func (l *live) meta() metav1.ObjectMeta {
	if l.deployment != nil {
		return l.deployment.ObjectMeta
	}
	return l.job.ObjectMeta
}

func (l *live) container() *corev1.Container {
	var ps *corev1.PodSpec
	if l.deployment != nil {
		ps = &l.deployment.Spec.Template.Spec
	} else {
		ps = &l.job.Spec.Template.Spec
	}
	for i := range ps.Containers {
		if ps.Containers[i].Name == containerName {
			return &ps.Containers[i]
		}
	}
	return nil
}

// diff lists the paths the dry run changes: the workload's unprefixed,
// the Secret's and the Service's prefixed with their kind.
func (l *live) diff(kind string, got applied) ([]string, error) {
	var out []string
	if got.workload != nil && l.deployment != nil && kind == KindDeployment {
		paths, err := changedPaths(l.deployment, got.workload)
		if err != nil {
			return nil, err
		}
		out = append(out, paths...)
	}
	for _, o := range []struct {
		prefix      string
		live, after runtime.Object
	}{{"Secret ", l.secret, got.secret}, {"Service ", l.service, got.service}} {
		if reflect.ValueOf(o.live).IsNil() || o.after == nil {
			continue
		}
		paths, err := changedPaths(o.live, o.after)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			out = append(out, o.prefix+p)
		}
	}
	return out, nil
}

// contractEnv are the variables flowctl sets at apply (docs/compat.md):
// for an existing object, their live values stand in for what apply would
// give them, so that only what the configuration changes is reported.
var contractEnv = map[string]bool{
	contract.EnvEnableFlowctl: true, contract.EnvEndpoint: true, contract.EnvHeartbeatInterval: true,
	contract.EnvComponentID: true, contract.EnvServiceID: true, contract.EnvPlainComponentID: true,
	contract.EnvPlainServiceID: true, contract.EnvPipeline: true, contract.EnvLineage: true,
	contract.EnvInstanceID: true, contract.EnvSpecHash: true, contract.EnvComponentAddress: true,
	contract.EnvComponentToken: true, contract.EnvPlainComponentToken: true, contract.EnvPort: true,
	contract.EnvHealthPort: true, contract.EnvStateDir: true,
	contract.EnvDataPlaneKey: true, contract.EnvBindAddress: true,
}

// dryRunSpec is comp as Start would get it, with what only apply knows
// (ports, token, resolved references) stood in for: by the live objects'
// values when cur holds them, by placeholders otherwise.
func dryRunSpec(pl *config.Pipeline, comp *config.Component, cur *live) providers.ComponentSpec {
	env := map[string]string{}
	for k, v := range comp.Env {
		env[k] = v.Value
	}
	env[contract.EnvComponentToken] = "dry-run"
	ports := map[string]int{contract.EnvPort: dryRunPort, contract.EnvHealthPort: dryRunHealthPort}
	spec := providers.ComponentSpec{Pipeline: pl.Name, Lineage: "dry-run", InstanceID: "dry-run", SpecHash: "dry-run",
		Component: comp, Env: env, Ports: ports}
	if cur == nil {
		return spec
	}
	m := cur.meta()
	spec.Lineage, spec.SpecHash = m.Labels[LabelLineage], m.Annotations[AnnotationSpecHash]
	spec.InstanceID = m.Annotations[AnnotationInstance]
	if lp := parsePorts(m.Annotations[AnnotationPorts]); len(lp) > 0 {
		spec.Ports = lp
	}
	liveEnv := map[string]string{}
	if ctr := cur.container(); ctr != nil {
		for _, e := range ctr.Env {
			switch {
			case e.ValueFrom == nil:
				liveEnv[e.Name] = e.Value
			case e.ValueFrom.SecretKeyRef != nil && cur.secret != nil:
				liveEnv[e.Name] = string(cur.secret.Data[e.ValueFrom.SecretKeyRef.Key])
			}
		}
	}
	for k, v := range liveEnv {
		cv, configured := comp.Env[k]
		if (contractEnv[k] && !configured) || (configured && cv.Deferred) {
			env[k] = v
		}
	}
	return spec
}
