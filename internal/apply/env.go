package apply

import (
	"os"
	"strconv"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Settings the engine injects into every component, beyond the user's env.
type injected struct {
	pipeline, lineage, instanceID, specHash string
	endpoint, token                         string
	dataKey                                 string // FLOWCTL_DATA_PLANE_KEY
	heartbeat                               string
	ports                                   map[string]int
}

// buildEnv is the component's final environment: what the contract says
// components expect (the bind address among them), then the user's env
// (which wins), then the tokens, the data-plane key and the control-plane
// endpoint (which the user cannot override).
func buildEnv(prov providers.Provider, c *config.Component, inj injected, resolve func(config.Ref) string) map[string]string {
	env := map[string]string{}
	if hp, ok := prov.(providers.HostEnvPasser); ok {
		for _, k := range hp.HostEnv() {
			if v, ok := os.LookupEnv(k); ok {
				env[k] = v
			}
		}
	}
	id := c.ID
	for k, v := range map[string]string{
		contract.EnvComponentID:       id,
		contract.EnvServiceID:         id,
		contract.EnvPlainComponentID:  id,
		contract.EnvPlainServiceID:    id,
		contract.EnvHeartbeatInterval: inj.heartbeat,
		contract.EnvPipeline:          inj.pipeline,
		contract.EnvLineage:           inj.lineage,
		contract.EnvInstanceID:        inj.instanceID,
		contract.EnvSpecHash:          inj.specHash,
		contract.EnvComponentAddress:  c.Address(),
		contract.EnvBindAddress:       providers.BindAddressOf(prov, c),
	} {
		env[k] = v
	}
	for name, port := range inj.ports {
		env[name] = strconv.Itoa(port)
	}
	for k, v := range c.Env {
		if v.Deferred {
			env[k] = config.ResolveRefs(v.Value, resolve)
		} else {
			env[k] = v.Value
		}
	}
	if inj.endpoint != "" {
		env[contract.EnvEndpoint] = inj.endpoint
		env[contract.EnvEnableFlowctl] = "true"
	}
	if inj.token != "" {
		env[contract.EnvComponentToken] = inj.token
		env[contract.EnvPlainComponentToken] = inj.token
	}
	if inj.dataKey != "" {
		env[contract.EnvDataPlaneKey] = inj.dataKey
	}
	return env
}

// addressOf is how a consumer reaches component c: host:port as seen from
// other components. Providers that know better (Docker: the container name
// on the pipeline network) implement providers.AddressResolver.
func addressOf(prov providers.Provider, pipeline string, c *config.Component, port int) string {
	if r, ok := prov.(providers.AddressResolver); ok {
		return r.ComponentAddress(pipeline, c, port)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}
