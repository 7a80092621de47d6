package kubernetes

import (
	"context"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
)

// maxWarnings bounds the events a detail names.
const maxWarnings = 3

// podWarnings are the recent Warning events of the pods of the current
// instance, newest first, one per reason ("FailedScheduling: 0/1 nodes are
// available: …"). The events are a help, not a need: when they cannot be
// read, there are none.
func (p *Provider) podWarnings(ctx context.Context, c k8s.Interface, ns string, pods []corev1.Pod, instance string) []string {
	names := map[string]bool{}
	for _, pod := range pods {
		if instance == "" || pod.Annotations[AnnotationInstance] == instance {
			names[pod.Name] = true
		}
	}
	if len(names) == 0 {
		return nil
	}
	l, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "type=" + corev1.EventTypeWarning + ",involvedObject.kind=Pod"})
	if err != nil {
		p.log.Debug("the pods' events cannot be read", "namespace", ns, "err", err)
		return nil
	}
	var evs []corev1.Event
	for _, e := range l.Items {
		if names[e.InvolvedObject.Name] {
			evs = append(evs, e)
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(&evs[i]).After(eventTime(&evs[j])) })
	seen := map[string]bool{}
	var out []string
	for _, e := range evs {
		msg := strings.TrimSpace(e.Message)
		if seen[e.Reason] {
			continue
		}
		seen[e.Reason] = true
		out = append(out, e.Reason+": "+truncate(msg, 200))
		if len(out) == maxWarnings {
			break
		}
	}
	return out
}

// eventTime is when an event last happened.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
