// Package registry builds the set of executors flowctl drives, the one
// every command and serve's background work use. It sits below
// internal/providers because it imports each executor's package, which
// internal/providers itself cannot: a new executor is its own package plus
// one line in New.
package registry

import (
	"path/filepath"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/docker"
	"github.com/flowctl/flowctl/internal/providers/kubernetes"
	"github.com/flowctl/flowctl/internal/providers/nomad"
	"github.com/flowctl/flowctl/internal/providers/process"
)

// Options configure the executors of one state file.
type Options struct {
	// StateDir is the state folder (.flowctl): the process executor keeps
	// its logs and run records there. Required.
	StateDir string
	// Nomad is how the nomad executor finds its cluster: the pipeline's
	// nomad block when one is at hand, else NOMAD_* alone.
	Nomad nomad.Options
	// Kubernetes is how the kubernetes executor finds its cluster: the
	// pipeline's kubernetes block when one is at hand, else KUBECONFIG.
	Kubernetes kubernetes.Options
}

// New returns every executor flowctl has. None contacts its engine or
// cluster before first use, so a pipeline that never names one never
// needs it.
func New(o Options) *providers.Registry {
	var dockerLogs string
	if o.StateDir != "" {
		dockerLogs = filepath.Join(o.StateDir, "logs")
	}
	return providers.NewRegistry(
		process.New(process.Options{Dir: o.StateDir}),
		docker.New(docker.Options{LogDir: dockerLogs}),
		nomad.New(o.Nomad),
		kubernetes.New(o.Kubernetes),
	)
}
