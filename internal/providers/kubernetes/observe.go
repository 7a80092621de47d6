package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/flowctl/flowctl/internal/providers"
)

// workload is what Observe reads of a Deployment or a Job, in common terms.
type workload struct {
	meta     metav1.ObjectMeta
	kind     string
	desired  int32 // replicas (Deployment) or parallelism (Job)
	complete bool  // rollout complete / every pod running
	ready    int32
	// finished: a Job that ended; failed says how.
	finished, failed bool
	reason           string
	instance         string
}

func fromDeployment(d *appsv1.Deployment) workload {
	w := workload{meta: d.ObjectMeta, kind: KindDeployment, ready: d.Status.ReadyReplicas, instance: d.Spec.Template.Annotations[AnnotationInstance]}
	if d.Spec.Replicas != nil {
		w.desired = *d.Spec.Replicas
	}
	s := d.Status
	w.complete = s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == w.desired &&
		s.AvailableReplicas == w.desired && s.Replicas == w.desired
	return w
}

func fromJob(j *batchv1.Job) workload {
	w := workload{meta: j.ObjectMeta, kind: KindJob, ready: ptrVal(j.Status.Ready), instance: j.Spec.Template.Annotations[AnnotationInstance]}
	if j.Spec.Parallelism != nil {
		w.desired = *j.Spec.Parallelism
	}
	w.complete = w.ready >= w.desired
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			w.finished = true
		case batchv1.JobFailed:
			w.finished, w.failed, w.reason = true, true, c.Reason+": "+c.Message
		}
	}
	return w
}

func ptrVal(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// getWorkload reads the workload of hd; nil when it does not exist.
func (p *Provider) getWorkload(ctx context.Context, c k8s.Interface, hd handle) (*workload, error) {
	var w workload
	switch hd.Kind {
	case KindJob:
		j, err := c.BatchV1().Jobs(hd.Namespace).Get(ctx, hd.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, p.explain(hd.cluster(), "get", "jobs", hd.Namespace, err)
		}
		w = fromJob(j)
	default:
		d, err := c.AppsV1().Deployments(hd.Namespace).Get(ctx, hd.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, p.explain(hd.cluster(), "get", "deployments", hd.Namespace, err)
		}
		w = fromDeployment(d)
	}
	return &w, nil
}

// Observe implements providers.Provider from the workload and its pods.
func (p *Provider) Observe(ctx context.Context, h providers.Handle) (providers.Observed, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return providers.Observed{}, err
	}
	c, err := p.client(hd.cluster())
	if err != nil {
		return providers.Observed{}, err
	}
	w, err := p.getWorkload(ctx, c, hd)
	if err != nil || w == nil {
		return providers.Observed{Address: hd.Address}, err
	}
	pods, err := p.pods(ctx, c, hd)
	if err != nil {
		return providers.Observed{}, err
	}
	o := observed(w, pods)
	o.Handle = h
	if (!o.Running && !(w.finished && !w.failed)) || (o.Health != providers.HealthHealthy && stalled(pods, w.instance)) {
		// A rollout that stalls or fails: the pods' Warning events say
		// why as well as their status does (FailedScheduling, BackOff).
		if ev := p.podWarnings(ctx, c, hd.Namespace, pods, w.instance); len(ev) > 0 {
			o.Detail += "; events: " + strings.Join(ev, "; ")
		}
	}
	return o, nil
}

// pods lists the component's pods.
func (p *Provider) pods(ctx context.Context, c k8s.Interface, hd handle) ([]corev1.Pod, error) {
	sel := labels.SelectorFromSet(labels.Set{LabelPipeline: hd.Pipeline, LabelComponent: hd.Address}).String()
	l, err := c.CoreV1().Pods(hd.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, p.explain(hd.cluster(), "list", "pods", hd.Namespace, err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items, nil
}

// observed is what a workload and its pods tell, in Observe's terms.
func observed(w *workload, pods []corev1.Pod) providers.Observed {
	m := w.meta
	o := providers.Observed{
		Address:     m.Labels[LabelComponent],
		Exists:      true,
		Running:     true,
		SpecHash:    m.Annotations[AnnotationSpecHash],
		Pipeline:    m.Labels[LabelPipeline],
		Lineage:     m.Labels[LabelLineage],
		InstanceID:  w.instance,
		StartedAt:   m.CreationTimestamp.Time,
		Fingerprint: fmt.Sprintf("%s/%s uid=%s generation=%d", w.kind, m.Name, m.UID, m.Generation),
		Ports:       parsePorts(m.Annotations[AnnotationPorts]),
		Health:      providers.HealthStarting,
	}
	if drift := driftOf(w); drift != "" {
		// The object is not what flowctl applied: a hash of its own makes
		// plan see it as changed outside flowctl.
		o.SpecHash += "+" + drift
	}
	st := podStatus(pods, w.instance)
	o.Detail = fmt.Sprintf("%s: ready %d/%d, restarts %d", strings.ToLower(w.kind), w.ready, w.desired, st.restarts)
	if st.lastTermination != "" {
		o.Detail += ", last termination " + st.lastTermination
	}
	if len(st.nodes) > 0 {
		o.Detail += ", node " + strings.Join(st.nodes, " ")
	}
	switch {
	case w.finished && !w.failed:
		o.Running, o.Health = false, ""
		zero := 0
		o.ExitCode = &zero
		o.Detail = "job completed; " + o.Detail
	case w.finished:
		o.Running, o.Health = false, ""
		o.Detail = "job failed (" + w.reason + "); " + o.Detail
	case st.failure != "":
		o.Running, o.Health = false, ""
		o.Detail = st.failure + "; " + o.Detail
	case w.complete:
		o.Health = providers.HealthHealthy
	}
	return o
}

// driftOf says how the workload differs from what flowctl applied: scaled
// (replicas other than the annotation says) or edited (someone else owns
// fields of its spec); empty when it does not.
func driftOf(w *workload) string {
	if want := w.meta.Annotations[AnnotationReplicas]; want != "" && want != strconv.Itoa(int(w.desired)) {
		return "scaled-to-" + strconv.Itoa(int(w.desired))
	}
	if e := editor(w.meta.ManagedFields); e != "" {
		return "edited-by-" + e
	}
	return ""
}

// editor names a field manager other than flowctl that set fields of the
// object's spec (a kubectl edit, set, apply or scale), or "".
func editor(fields []metav1.ManagedFieldsEntry) string {
	for _, f := range fields {
		if f.Manager == FieldManager || f.Subresource == "status" || f.FieldsV1 == nil {
			continue
		}
		if f.Subresource == "scale" || strings.Contains(string(f.FieldsV1.Raw), `"f:spec"`) {
			return f.Manager
		}
	}
	return ""
}

// podStats sums up the pods of the current instance.
type podStats struct {
	restarts        int32
	lastTermination string
	nodes           []string
	// failure is why a pod cannot run, with the pod's name.
	failure string
}

// badWaiting are the waiting reasons that mean a container will not start
// by waiting longer.
var badWaiting = map[string]bool{
	"ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CrashLoopBackOff": true, "CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

func podStatus(pods []corev1.Pod, instance string) podStats {
	var st podStats
	nodes := map[string]bool{}
	for i := range pods {
		pod := &pods[i]
		if instance != "" && pod.Annotations[AnnotationInstance] != instance {
			continue // an older instance's pod, on its way out
		}
		if pod.Spec.NodeName != "" {
			nodes[pod.Spec.NodeName] = true
		}
		for _, cs := range pod.Status.ContainerStatuses {
			st.restarts += cs.RestartCount
			if t := cs.LastTerminationState.Terminated; t != nil {
				st.lastTermination = fmt.Sprintf("%s (exit code %d)", t.Reason, t.ExitCode)
			}
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				st.lastTermination = fmt.Sprintf("%s (exit code %d)", t.Reason, t.ExitCode)
				if st.failure == "" {
					st.failure = fmt.Sprintf("pod %s: container %s terminated: %s (exit code %d)", pod.Name, cs.Name, t.Reason, t.ExitCode)
				}
			}
			if wt := cs.State.Waiting; wt != nil && badWaiting[wt.Reason] && st.failure == "" {
				st.failure = fmt.Sprintf("pod %s: container %s: %s: %s", pod.Name, cs.Name, wt.Reason, wt.Message)
			}
		}
		if st.failure == "" {
			st.failure = podCondition(pod)
		}
	}
	for n := range nodes {
		st.nodes = append(st.nodes, n)
	}
	sort.Strings(st.nodes)
	return st
}

// podCondition reports a pod that failed or cannot be scheduled.
func podCondition(pod *corev1.Pod) string {
	if pod.Status.Phase == corev1.PodFailed {
		return fmt.Sprintf("pod %s failed: %s %s", pod.Name, pod.Status.Reason, pod.Status.Message)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return fmt.Sprintf("pod %s is unschedulable: %s", pod.Name, c.Message)
		}
	}
	return ""
}

// stalled says a pod of the current instance waits on something that may
// not come: it is not scheduled, or a container waits for a reason other
// than being created. Only then are events worth reading while a rollout
// is under way.
func stalled(pods []corev1.Pod, instance string) bool {
	for i := range pods {
		pod := &pods[i]
		if instance != "" && pod.Annotations[AnnotationInstance] != instance {
			continue
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return true
			}
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if wt := cs.State.Waiting; wt != nil && wt.Reason != "" && wt.Reason != "ContainerCreating" && wt.Reason != "PodInitializing" {
				return true
			}
		}
	}
	return false
}

// List implements providers.Provider: the Deployments and Jobs in the
// pipeline's namespace labelled with the pipeline.
func (p *Provider) List(ctx context.Context, pipeline string) ([]providers.Observed, error) {
	k := p.cluster()
	c, err := p.client(k)
	if err != nil {
		return nil, err
	}
	ns, owned := p.Namespace(pipeline)
	sel := labels.SelectorFromSet(labels.Set{LabelPipeline: pipeline, LabelManagedBy: FieldManager}).String()
	opts := metav1.ListOptions{LabelSelector: sel}
	deps, err := c.AppsV1().Deployments(ns).List(ctx, opts)
	if err != nil {
		return nil, p.explain(k, "list", "deployments", ns, err)
	}
	jobs, err := c.BatchV1().Jobs(ns).List(ctx, opts)
	if err != nil {
		return nil, p.explain(k, "list", "jobs", ns, err)
	}
	var ws []workload
	for i := range deps.Items {
		ws = append(ws, fromDeployment(&deps.Items[i]))
	}
	for i := range jobs.Items {
		ws = append(ws, fromJob(&jobs.Items[i]))
	}
	if len(ws) == 0 {
		return nil, nil
	}
	pods, err := c.CoreV1().Pods(ns).List(ctx, opts)
	if err != nil {
		return nil, p.explain(k, "list", "pods", ns, err)
	}
	var out []providers.Observed
	for i := range ws {
		w := &ws[i]
		var mine []corev1.Pod
		for _, pod := range pods.Items {
			if pod.Labels[LabelComponent] == w.meta.Labels[LabelComponent] {
				mine = append(mine, pod)
			}
		}
		o := observed(w, mine)
		o.Handle = encodeHandle(handle{Kind: w.kind, Name: w.meta.Name, Namespace: ns, Kubeconfig: k.Kubeconfig, Context: k.Context,
			OwnsNamespace: owned, Address: o.Address, Pipeline: pipeline, Lineage: o.Lineage})
		out = append(out, o)
	}
	return out, nil
}
