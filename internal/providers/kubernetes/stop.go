package kubernetes

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/flowctl/flowctl/internal/providers"
)

// Stop implements providers.Provider: foreground deletion of the workload
// (its pods go first, each given grace), then its Service and Secret; it
// returns once the pods are gone. A namespace flowctl created is removed
// when nothing of anyone is left in it.
func (p *Provider) Stop(ctx context.Context, h providers.Handle, grace time.Duration) error {
	hd, err := decodeHandle(h)
	if err != nil {
		return err
	}
	c, err := p.client(hd.cluster())
	if err != nil {
		return err
	}
	if err := p.deleteWorkload(ctx, c, hd, grace); err != nil {
		return err
	}
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	if err := c.CoreV1().Services(hd.Namespace).Delete(ctx, hd.Name, del); err != nil && !apierrors.IsNotFound(err) {
		return p.explain(hd.cluster(), "delete", "services", hd.Namespace, err)
	}
	if err := c.CoreV1().Secrets(hd.Namespace).Delete(ctx, secretName(hd.Name), del); err != nil && !apierrors.IsNotFound(err) {
		return p.explain(hd.cluster(), "delete", "secrets", hd.Namespace, err)
	}
	if hd.OwnsNamespace {
		p.removeNamespaceIfEmpty(ctx, c, hd)
	}
	return nil
}

// StopForReplace implements providers.ReplaceStopper: a new instance of a
// Deployment is a rolling update of the same object, so the object stays;
// unless someone other than flowctl edited its spec, in which case it is
// deleted, so that none of their fields survive into the new instance.
func (p *Provider) StopForReplace(ctx context.Context, h providers.Handle, grace time.Duration) error {
	hd, err := decodeHandle(h)
	if err != nil {
		return err
	}
	if hd.Kind != KindDeployment {
		return p.Stop(ctx, h, grace)
	}
	c, err := p.client(hd.cluster())
	if err != nil {
		return err
	}
	d, err := c.AppsV1().Deployments(hd.Namespace).Get(ctx, hd.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return p.explain(hd.cluster(), "get", "deployments", hd.Namespace, err)
	}
	if editor(d.ManagedFields) != "" {
		return p.deleteWorkload(ctx, c, hd, grace)
	}
	return nil
}

// deleteWorkload deletes the workload in the foreground and waits until it
// and its pods are gone.
func (p *Provider) deleteWorkload(ctx context.Context, c k8s.Interface, hd handle, grace time.Duration) error {
	fg := metav1.DeletePropagationForeground
	secs := int64(grace.Seconds())
	opts := metav1.DeleteOptions{PropagationPolicy: &fg, GracePeriodSeconds: &secs}
	var err error
	resource := "deployments"
	switch hd.Kind {
	case KindJob:
		resource = "jobs"
		err = c.BatchV1().Jobs(hd.Namespace).Delete(ctx, hd.Name, opts)
	default:
		err = c.AppsV1().Deployments(hd.Namespace).Delete(ctx, hd.Name, opts)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return p.explain(hd.cluster(), "delete", resource, hd.Namespace, err)
	}
	return p.waitGone(ctx, c, hd, resource)
}

// waitGone polls until the workload is gone. Deleted in the foreground,
// a workload goes only after its dependents (ReplicaSets, then pods, each
// blocking their owner's deletion): once it is gone, so are its pods.
func (p *Provider) waitGone(ctx context.Context, c k8s.Interface, hd handle, resource string) error {
	for {
		var err error
		switch hd.Kind {
		case KindJob:
			_, err = c.BatchV1().Jobs(hd.Namespace).Get(ctx, hd.Name, metav1.GetOptions{})
		default:
			_, err = c.AppsV1().Deployments(hd.Namespace).Get(ctx, hd.Name, metav1.GetOptions{})
		}
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return p.explain(hd.cluster(), "get", resource, hd.Namespace, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop %s: waiting for its pods to go: %w", hd.Address, ctx.Err())
		case <-time.After(p.opts.PollInterval):
		}
	}
}

// removeNamespaceIfEmpty deletes the namespace flowctl created for the
// pipeline once it holds no workload, Service, pod or Secret of anyone's
// (the cluster's own service-account token Secrets aside). It does not
// wait: the namespace controller finishes in the background.
func (p *Provider) removeNamespaceIfEmpty(ctx context.Context, c k8s.Interface, hd handle) {
	ns, err := c.CoreV1().Namespaces().Get(ctx, hd.Namespace, metav1.GetOptions{})
	if err != nil || ns.Labels[LabelNamespaceOwner] != hd.Pipeline || ns.Status.Phase == corev1.NamespaceTerminating {
		return
	}
	one := metav1.ListOptions{Limit: 1}
	if l, err := c.AppsV1().Deployments(hd.Namespace).List(ctx, one); err != nil || len(l.Items) > 0 {
		return
	}
	if l, err := c.BatchV1().Jobs(hd.Namespace).List(ctx, one); err != nil || len(l.Items) > 0 {
		return
	}
	if l, err := c.CoreV1().Services(hd.Namespace).List(ctx, one); err != nil || len(l.Items) > 0 {
		return
	}
	if l, err := c.CoreV1().Pods(hd.Namespace).List(ctx, one); err != nil || len(l.Items) > 0 {
		return
	}
	secrets, err := c.CoreV1().Secrets(hd.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, s := range secrets.Items {
		if s.Type != corev1.SecretTypeServiceAccountToken {
			return
		}
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, hd.Namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		p.log.Warn("could not remove the namespace flowctl created", "namespace", hd.Namespace, "err", err)
	}
}
