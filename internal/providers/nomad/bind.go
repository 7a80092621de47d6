package nomad

import "github.com/flowctl/flowctl/internal/config"

// BindAddress implements providers.BindAddresser: an allocation is reached
// at its node's address (ComponentAddress), from other nodes too, so its
// ports listen on every interface (of the container, with the docker
// driver; of the node, with raw_exec, where the data token is what keeps
// callers out).
func (p *Provider) BindAddress(*config.Component) string { return "0.0.0.0" }
