package docker

// ReachesHostThroughBridge implements providers.BridgeGatewayUser: a
// container reaches the control plane as host.docker.internal, the
// bridge's gateway on the host, so the control plane must listen there.
func (p *Provider) ReachesHostThroughBridge() bool { return true }
