package docker

import "github.com/flowctl/flowctl/internal/config"

// BindAddress implements providers.BindAddresser: a container's ports
// listen on every interface of the container, which is attached to the
// pipeline's network only; nothing is published on the host unless the
// pipeline says so.
func (p *Provider) BindAddress(*config.Component) string { return "0.0.0.0" }
