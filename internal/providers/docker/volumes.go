package docker

import (
	"os"
	"strings"

	"github.com/flowctl/flowctl/internal/providers"
)

var _ providers.HostPathMounter = (*Provider)(nil)

// MountsHostPaths implements providers.HostPathMounter: a volume's
// host_path is a folder of this machine when the engine runs here (a unix
// socket); an engine reached over tcp:// or ssh:// mounts its own.
func (p *Provider) MountsHostPaths() bool {
	host := p.opts.Host
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	return host == "" || strings.HasPrefix(host, "unix://")
}
