package nomad

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/providers"
)

// Start implements providers.Provider: it registers the job, enforcing
// index 0 (the job must not exist), and returns as soon as Nomad accepted
// it; placing and starting its allocations is the cluster's work, and
// readiness the caller's. A refused registration leaves nothing behind.
func (p *Provider) Start(ctx context.Context, spec providers.ComponentSpec) (providers.Handle, error) {
	if spec.Component == nil {
		return nil, errors.New("nomad: start: no component")
	}
	addr := spec.Address()
	job, err := Job(&spec, p.conn)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", addr, err)
	}
	c, err := p.api()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", addr, err)
	}
	p.warnLoopbackEndpoint(addr, spec.Env)
	id := *job.ID
	var resp *api.JobRegisterResponse
	err = p.call(ctx, fmt.Sprintf("start %s: register job %s", addr, id), func(ctx context.Context) error {
		var err error
		resp, _, err = c.Jobs().RegisterOpts(job, &api.RegisterOptions{EnforceIndex: true, ModifyIndex: 0}, writeOptions(ctx, "", ""))
		return err
	})
	if err != nil {
		if strings.Contains(bodyOf(err), api.RegisterEnforceIndexErrPrefix) {
			return nil, p.jobTaken(ctx, addr, id, err)
		}
		return nil, err
	}
	if resp.Warnings != "" {
		p.log.Warn("Nomad registered the job with warnings", "job", id, "warnings", resp.Warnings)
	}
	return encodeHandle(handle{
		JobID: id, Namespace: p.conn.Namespace, Region: p.conn.Region, JobModifyIndex: resp.JobModifyIndex,
		Task: spec.Component.ID, Address: addr, Pipeline: spec.Pipeline, Lineage: spec.Lineage,
	}), nil
}

// jobTaken explains a registration Nomad refused because the job exists:
// whose job it is.
func (p *Provider) jobTaken(ctx context.Context, addr, id string, cause error) error {
	c, err := p.api()
	if err != nil {
		return cause
	}
	var job *api.Job
	err = p.read(ctx, "read job "+id, func(ctx context.Context) error {
		var err error
		job, _, err = c.Jobs().Info(id, queryOptions(ctx, "", ""))
		return err
	})
	if err != nil {
		return fmt.Errorf("start %s: the job %s exists already: %w", addr, id, cause)
	}
	m := job.Meta
	idx := uint64(0)
	if job.JobModifyIndex != nil {
		idx = *job.JobModifyIndex
	}
	if m[MetaPipeline] == "" {
		return fmt.Errorf("start %s: Nomad job %s exists and flowctl did not register it (job modify index %d): remove or rename it", addr, id, idx)
	}
	return fmt.Errorf("start %s: Nomad job %s was registered since the plan (pipeline %s, lineage %s, job modify index %d); Nomad refused to overwrite it: another state file runs this pipeline, or plan again to see it",
		addr, id, m[MetaPipeline], m[MetaLineage], idx)
}
