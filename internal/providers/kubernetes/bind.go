package kubernetes

import "github.com/flowctl/flowctl/internal/config"

// BindAddress implements providers.BindAddresser: a pod's ports listen on
// every interface of the pod, where its Service sends traffic.
func (p *Provider) BindAddress(*config.Component) string { return "0.0.0.0" }
