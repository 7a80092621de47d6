package config

import (
	"net"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// ExecutorKubernetes is the kubernetes executor's name; "k8s", the
// ecosystem's other word for it, is read as the same executor.
const ExecutorKubernetes = "kubernetes"

// executorAliases maps the other words files use for an executor to its
// name.
var executorAliases = map[string]string{"k8s": ExecutorKubernetes, "local": "process", "container": "docker"}

// canonicalExecutor is the executor name an executor word means.
func canonicalExecutor(s string) string {
	if n, ok := executorAliases[strings.ToLower(strings.TrimSpace(s))]; ok {
		return n
	}
	return s
}

// Kubernetes is the pipeline's kubernetes block: which cluster the
// components on the kubernetes executor run in and where. Every field may
// be left out: the cluster is then the one KUBECONFIG (or ~/.kube/config)
// names, and the namespace one flowctl makes for the pipeline.
//
//	pipeline "ttp" {
//	  kubernetes {
//	    kubeconfig = "~/.kube/prod"
//	    context    = "prod-eu"
//	    namespace  = "stellar"
//	    advertise  = "flowctl.ops.svc:8080"
//	  }
//	}
//
// In YAML the same map is spec.kubernetes.
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file; relative to the pipeline file.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Context is the kubeconfig context (its current one when empty).
	Context string `json:"context,omitempty"`
	// Namespace holds the pipeline's objects; empty: a namespace named
	// after the pipeline, which flowctl creates and removes.
	Namespace string `json:"namespace,omitempty"`
	// Advertise is the control plane's host:port as pods reach it: the
	// FLOWCTL_ENDPOINT the kubernetes executor hands its components.
	Advertise string `json:"advertise,omitempty"`
}

// k8sSchema is the HCL body of the kubernetes block.
var k8sSchema = &hcl.BodySchema{Attributes: attrSchemas("kubeconfig", "context", "namespace", "advertise")}

// ylK8sKeys are the keys of spec.kubernetes.
var ylK8sKeys = []string{"kubeconfig", "context", "namespace", "advertise"}

// decodeKubernetes reads the kubernetes block of the pipeline block.
func (l *hclLoader) decodeKubernetes(o *hclOwner, p *Pipeline, b *hcl.Block) {
	o.ranges["kubernetes"] = b.DefRange
	content, diags := b.Body.Content(k8sSchema)
	l.diags = append(l.diags, diags...)
	k := &Kubernetes{}
	for _, f := range k8sFields(k) {
		l.getString(o, content.Attributes, f.key, "kubernetes."+f.key, f.dst)
	}
	p.Kubernetes = k
}

type k8sField struct {
	key string
	dst *string
}

func k8sFields(k *Kubernetes) []k8sField {
	return []k8sField{{"kubeconfig", &k.Kubeconfig}, {"context", &k.Context}, {"namespace", &k.Namespace}, {"advertise", &k.Advertise}}
}

// kubernetes reads spec.kubernetes.
func (l *yamlLoader) kubernetes(p *Pipeline, e ylEntry) {
	m := l.mapping(e.v, "", "spec.kubernetes", "a map")
	p.Ranges["kubernetes"] = l.rng(l.deref(e.v))
	if m == nil {
		return
	}
	es := l.fields(m, "", "spec.kubernetes", ylK8sKeys)
	k := &Kubernetes{}
	for _, f := range k8sFields(k) {
		if e, ok := es[f.key]; ok {
			*f.dst, _ = l.str(e.v, "", "spec.kubernetes."+f.key)
			p.Ranges["kubernetes."+f.key] = l.rng(l.deref(e.v))
		}
	}
	p.Kubernetes = k
}

// normalizeKubernetes trims the block; a block that sets nothing is no
// block.
func normalizeKubernetes(p *Pipeline) {
	k := p.Kubernetes
	if k == nil {
		return
	}
	for _, f := range k8sFields(k) {
		*f.dst = strings.TrimSpace(*f.dst)
	}
	if *k == (Kubernetes{}) {
		p.Kubernetes = nil
	}
}

// dnsLabel is a Kubernetes namespace name (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// validateKubernetes checks the kubernetes block.
func validateKubernetes(p *Pipeline) hcl.Diagnostics {
	k := p.Kubernetes
	if k == nil {
		return nil
	}
	var diags hcl.Diagnostics
	rng := func(attr string) hcl.Range {
		if r, ok := p.Ranges["kubernetes."+attr]; ok {
			return r
		}
		return p.Ranges["kubernetes"]
	}
	if k.Namespace != "" && !dnsLabel.MatchString(k.Namespace) {
		diags = append(diags, errorf(rng("namespace"), "Invalid Kubernetes namespace",
			"pipeline %s: kubernetes.namespace %q: a namespace is 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", p.Name, k.Namespace))
	}
	if k.Advertise != "" {
		if host, port, err := net.SplitHostPort(k.Advertise); err != nil || host == "" || port == "" {
			diags = append(diags, errorf(rng("advertise"), "Invalid advertise address",
				"pipeline %s: kubernetes.advertise %q must be host:port, the control plane as pods reach it", p.Name, k.Advertise))
		}
	}
	return diags
}

// validateKubernetesComponent checks what a component on the kubernetes
// executor needs: an image (a pod runs containers), and nothing that
// names a path on this machine.
func validateKubernetesComponent(c *Component) hcl.Diagnostics {
	if c.Executor != ExecutorKubernetes {
		return nil
	}
	var diags hcl.Diagnostics
	if c.Image == "" {
		diags = append(diags, compErr(c, "id", "No image on Kubernetes", "the kubernetes executor runs container images; set image (command then overrides its entrypoint)"))
	}
	for i := range c.Volumes {
		diags = append(diags, compErr(c, "volumes", "Volume on Kubernetes", "volume %d: the kubernetes executor mounts no host paths; remove it", i))
	}
	if h := c.Health; h != nil && h.URL != "" {
		diags = append(diags, compErr(c, "health", "Health URL on Kubernetes", "a probe runs inside the cluster against the pod; give health a path and port rather than a full URL"))
	}
	return diags
}
