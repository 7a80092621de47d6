package providers

import "github.com/flowctl/flowctl/internal/config"

// LoopbackBind is where components listen when their provider does not
// implement BindAddresser: they share the host's network with flowctl,
// which reaches them on 127.0.0.1, and nothing else needs to.
const LoopbackBind = "127.0.0.1"

// BindAddresser is implemented by providers whose components run in a
// network of their own (a container, a pod, an allocation that other nodes
// reach) and must listen beyond loopback for flowctl and their peers to
// reach them. BindAddress is the IP address a component's data and health
// ports listen on, injected as FLOWCTL_BIND_ADDRESS; it is loopback for
// providers that do not implement it.
type BindAddresser interface {
	BindAddress(c *config.Component) string
}

// BindAddressOf is the address components of p listen on.
func BindAddressOf(p Provider, c *config.Component) string {
	if b, ok := p.(BindAddresser); ok {
		return b.BindAddress(c)
	}
	return LoopbackBind
}
