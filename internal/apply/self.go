package apply

import (
	"strconv"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// selfResolver resolves ${self.ATTR} in c's own env from the ports this
// instance is given (so that `PORT = ":${self.port}"` hands the component
// the port flowctl records, in the form it wants), and every other
// reference with others.
func selfResolver(pipeline string, prov providers.Provider, c *config.Component, ports map[string]int, others func(config.Ref) string) func(config.Ref) string {
	return func(r config.Ref) string {
		if !r.Self() {
			return others(r)
		}
		switch r.Attr {
		case config.PortAttr:
			return strconv.Itoa(ports[contract.EnvPort])
		case config.HealthPortAttr:
			return strconv.Itoa(ports[contract.EnvHealthPort])
		}
		return addressOf(prov, pipeline, c, ports[contract.EnvPort])
	}
}

// readyTimeout bounds the wait for c to be ready: its ready_timeout, or
// the apply's.
func (w *walker) readyTimeout(c *config.Component) time.Duration {
	return c.ReadyTimeoutOr(config.Duration(w.ReadyTimeout)).D()
}
