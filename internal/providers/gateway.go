package providers

// BridgeGatewayUser is implemented by providers whose components run in
// containers on the Docker bridge and reach the control plane on the host
// through the bridge's gateway (host.docker.internal). `flowctl serve`
// listens on that gateway only while the state records a component on such
// a provider; ReachesHostThroughBridge may say no for a configuration that
// does not (a provider that runs its containers on the host's network).
type BridgeGatewayUser interface {
	ReachesHostThroughBridge() bool
}

// ReachesHostThroughBridge says whether components of p reach the host
// through the Docker bridge's gateway (BridgeGatewayUser).
func ReachesHostThroughBridge(p Provider) bool {
	b, ok := p.(BridgeGatewayUser)
	return ok && b.ReachesHostThroughBridge()
}
