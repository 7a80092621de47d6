package nomad

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/providers"
)

// Observe implements providers.Provider from the job and its allocations
// (the current registration's only: Nomad leaves out those of a purged
// job of the same ID).
func (p *Provider) Observe(ctx context.Context, h providers.Handle) (providers.Observed, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return providers.Observed{}, err
	}
	job, allocs, err := p.jobAndAllocs(ctx, hd)
	if err != nil {
		return providers.Observed{}, err
	}
	if job == nil {
		return providers.Observed{Address: hd.Address}, nil
	}
	o := observed(job, allocs, p.conn.Region)
	if o.Address == "" {
		o.Address = hd.Address
	}
	return o, nil
}

// jobAndAllocs reads the job and its allocations; job is nil when Nomad
// has no such job.
func (p *Provider) jobAndAllocs(ctx context.Context, hd handle) (*api.Job, []*api.AllocationListStub, error) {
	c, err := p.api()
	if err != nil {
		return nil, nil, err
	}
	var job *api.Job
	err = p.read(ctx, fmt.Sprintf("observe %s: read job %s", hd.Address, hd.JobID), func(ctx context.Context) error {
		var err error
		job, _, err = c.Jobs().Info(hd.JobID, queryOptions(ctx, hd.Namespace, hd.Region))
		return err
	})
	if isNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var allocs []*api.AllocationListStub
	err = p.read(ctx, fmt.Sprintf("observe %s: list allocations of job %s", hd.Address, hd.JobID), func(ctx context.Context) error {
		var err error
		allocs, _, err = c.Jobs().Allocations(hd.JobID, false, queryOptions(ctx, hd.Namespace, hd.Region))
		return err
	})
	if isNotFound(err) {
		return nil, nil, nil // purged in between
	}
	if err != nil {
		return nil, nil, err
	}
	return job, allocs, nil
}

// observed is what a job and its allocations tell, in Observe's terms.
func observed(job *api.Job, allocs []*api.AllocationListStub, region string) providers.Observed {
	m := job.Meta
	id, idx := deref(job.ID), derefIndex(job.JobModifyIndex)
	o := providers.Observed{
		Address:    m[MetaComponent],
		Exists:     true,
		SpecHash:   m[MetaSpecHash],
		Pipeline:   m[MetaPipeline],
		Lineage:    m[MetaLineage],
		InstanceID: m[MetaInstance],
		Handle: encodeHandle(handle{JobID: id, Namespace: deref(job.Namespace), Region: pick(deref(job.Region), region),
			JobModifyIndex: idx, Task: taskName(job), Address: m[MetaComponent], Pipeline: m[MetaPipeline], Lineage: m[MetaLineage]}),
		Fingerprint: fingerprint(id, idx),
		Ports:       providers.ParsePorts(m[MetaPorts]),
	}
	a := summarize(job, allocs)
	if a.latest != nil && !a.latest.startedAt.IsZero() {
		o.StartedAt = a.latest.startedAt
	}
	status := deref(job.Status)
	switch {
	case job.Stop != nil && *job.Stop:
		o.Detail = fmt.Sprintf("stopped (job %s is stopped in Nomad)", id)
	case status == "dead":
		o.Detail = "dead: " + a.failure(id)
	case a.crashing() && len(a.running) == 0:
		// Nomad is restarting it, and no allocation runs meanwhile: as a
		// restarting container, it does not run.
		o.Detail = a.describe(id)
	default:
		o.Running = true
		o.Health = a.health()
		o.Detail = a.describe(id)
	}
	if !o.Running && a.lastExit != nil {
		o.ExitCode = new(*a.lastExit)
	}
	return o
}

// allocSummary is what flowctl makes of a job's allocations.
type allocSummary struct {
	want      int  // allocations the job's groups ask for
	checks    bool // the job has service checks
	running   []*allocView
	pending   []*allocView
	failed    []*allocView // failed, and not replaced
	unhealthy []*allocView
	healthy   int
	restarts  uint64
	latest    *allocView // the newest allocation
	lastExit  *int       // exit code of the newest task that exited
}

type allocView struct {
	id        string
	client    string
	startedAt time.Time
	restarts  uint64
	state     string // of the task: pending, running, dead
	exit      *int
	event     string // the last event's message
	healthy   *bool
}

func summarize(job *api.Job, allocs []*api.AllocationListStub) allocSummary {
	s := allocSummary{}
	for _, g := range job.TaskGroups {
		if g.Count != nil {
			s.want += *g.Count
		} else {
			s.want++
		}
		s.checks = s.checks || hasChecks(g.Services)
		for _, t := range g.Tasks {
			s.checks = s.checks || hasChecks(t.Services)
		}
	}
	sorted := append([]*api.AllocationListStub(nil), allocs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].CreateIndex > sorted[j].CreateIndex })
	var exitAt int64
	for _, al := range sorted {
		v := viewOf(al)
		if s.latest == nil {
			s.latest = v
		}
		if v.exit != nil && (s.lastExit == nil || exitTime(al) > exitAt) {
			s.lastExit, exitAt = v.exit, exitTime(al)
		}
		if al.DesiredStatus != api.AllocDesiredStatusRun {
			continue
		}
		s.restarts += v.restarts
		switch {
		case al.ClientStatus == api.AllocClientStatusRunning && v.state == "running":
			s.running = append(s.running, v)
			switch {
			case v.healthy != nil && *v.healthy:
				s.healthy++
			case v.healthy != nil:
				s.unhealthy = append(s.unhealthy, v)
			}
		case al.ClientStatus == api.AllocClientStatusPending, al.ClientStatus == api.AllocClientStatusRunning:
			s.pending = append(s.pending, v)
		case al.ClientStatus == api.AllocClientStatusFailed && al.NextAllocation == "":
			s.failed = append(s.failed, v)
		}
	}
	return s
}

func hasChecks(ss []*api.Service) bool {
	for _, s := range ss {
		if s != nil && len(s.Checks) > 0 {
			return true
		}
	}
	return false
}

func viewOf(al *api.AllocationListStub) *allocView {
	v := &allocView{id: al.ID, client: al.ClientStatus}
	if al.DeploymentStatus != nil {
		v.healthy = al.DeploymentStatus.Healthy
	}
	for _, ts := range al.TaskStates {
		if ts == nil {
			continue
		}
		v.restarts += ts.Restarts
		v.state = ts.State
		if !ts.StartedAt.IsZero() {
			v.startedAt = ts.StartedAt
		}
		for _, ev := range ts.Events {
			if ev == nil {
				continue
			}
			if ev.Type == api.TaskTerminated {
				code := ev.ExitCode
				if s, ok := ev.Details["exit_code"]; ok {
					if n, err := strconv.Atoi(s); err == nil {
						code = n
					}
				}
				v.exit = &code
			}
			if msg := pick(ev.DisplayMessage, ev.Message); msg != "" {
				v.event = ev.Type + ": " + msg
			} else {
				v.event = ev.Type
			}
		}
	}
	return v
}

// exitTime orders allocations by when their task last finished.
func exitTime(al *api.AllocationListStub) int64 {
	var t int64
	for _, ts := range al.TaskStates {
		if ts != nil && ts.FinishedAt.UnixNano() > t {
			t = ts.FinishedAt.UnixNano()
		}
		if ts != nil && ts.LastRestart.UnixNano() > t {
			t = ts.LastRestart.UnixNano()
		}
	}
	return t
}

// crashing reports a crash loop: tasks that restarted and do not all run.
func (s allocSummary) crashing() bool { return s.restarts > 0 && len(s.running) < s.want }

// health is Nomad's verdict: healthy once every allocation the job asks
// for runs and Nomad judged it healthy (its task ran, and its check
// passed, for the update block's min_healthy_time); unhealthy when
// Nomad judged one unhealthy, one failed for good, or the tasks are
// crash-looping (Nomad restarts them; flowctl does not wait for that).
func (s allocSummary) health() string {
	switch {
	case len(s.unhealthy) > 0 || len(s.failed) > 0 || s.crashing():
		return providers.HealthUnhealthy
	case s.want == 0 || len(s.running) < s.want || s.healthy < s.want:
		return providers.HealthStarting
	}
	return providers.HealthHealthy
}

// describe says how a live job fares.
func (s allocSummary) describe(id string) string {
	var b strings.Builder
	crashing := s.crashing()
	switch {
	case crashing:
		fmt.Fprintf(&b, "crash-looping: restarted %d times", s.restarts)
	case len(s.running) >= s.want && s.want > 0:
		b.WriteString("running")
	case len(s.running) == 0 && len(s.pending) == 0 && len(s.failed) == 0:
		b.WriteString("pending: waiting for Nomad to place it")
	default:
		b.WriteString("pending")
	}
	fmt.Fprintf(&b, " (job %s, %d/%d allocations running", id, len(s.running), s.want)
	if s.restarts > 0 && !crashing {
		fmt.Fprintf(&b, ", restarted %d times", s.restarts)
	}
	if s.lastExit != nil && s.restarts > 0 {
		fmt.Fprintf(&b, ", last exit code %d", *s.lastExit)
	}
	if len(s.unhealthy) > 0 {
		fmt.Fprintf(&b, ", allocation %s unhealthy", shortID(s.unhealthy[0].id))
	} else if s.checks && len(s.running) > 0 && s.healthy == len(s.running) {
		b.WriteString(", checks passing")
	}
	if len(s.failed) > 0 {
		fmt.Fprintf(&b, ", allocation %s failed", shortID(s.failed[0].id))
	}
	b.WriteString(")")
	return b.String()
}

// failure says why a dead job's last allocation ended.
func (s allocSummary) failure(id string) string {
	l := s.latest
	if l == nil {
		return fmt.Sprintf("job %s has no allocation left", id)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "allocation %s %s", shortID(l.id), l.client)
	if s.lastExit != nil {
		fmt.Fprintf(&b, ": exited with code %d", *s.lastExit)
	}
	if s.restarts > 0 {
		fmt.Fprintf(&b, " after %d restarts", s.restarts)
	}
	if l.event != "" {
		fmt.Fprintf(&b, " (%s)", l.event)
	}
	return b.String()
}

func taskName(job *api.Job) string {
	for _, g := range job.TaskGroups {
		for _, t := range g.Tasks {
			return t.Name
		}
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefIndex(n *uint64) uint64 {
	if n == nil {
		return 0
	}
	return *n
}

// List implements providers.Provider: every job in the pipeline's
// namespace whose meta names the pipeline, whichever state registered it
// (Lineage tells). It lists by the ID prefix <pipeline>- with meta, and
// reads a job only when its Nomad is too old to list meta.
func (p *Provider) List(ctx context.Context, pipeline string) ([]providers.Observed, error) {
	c, err := p.api()
	if err != nil {
		return nil, err
	}
	var stubs []*api.JobListStub
	err = p.read(ctx, "list jobs of pipeline "+pipeline, func(ctx context.Context) error {
		q := queryOptions(ctx, p.conn.Namespace, p.conn.Region)
		q.Prefix = pipeline + "-"
		var err error
		stubs, _, err = c.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, q)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []providers.Observed
	for _, st := range stubs {
		meta := st.Meta
		if meta == nil {
			var job *api.Job
			err := p.read(ctx, "read job "+st.ID, func(ctx context.Context) error {
				var err error
				job, _, err = c.Jobs().Info(st.ID, queryOptions(ctx, st.Namespace, p.conn.Region))
				return err
			})
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			meta = job.Meta
		}
		if meta[MetaPipeline] != pipeline {
			continue
		}
		out = append(out, listed(st, meta, p.conn.Region))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		return out[i].Fingerprint < out[j].Fingerprint
	})
	return out, nil
}

// listed is what a job list entry tells, in Observe's terms.
func listed(st *api.JobListStub, m map[string]string, region string) providers.Observed {
	task := ""
	if _, id, ok := strings.Cut(m[MetaComponent], "."); ok {
		task = id
	}
	o := providers.Observed{
		Address:    m[MetaComponent],
		Exists:     true,
		Running:    !st.Stop && st.Status != "dead",
		SpecHash:   m[MetaSpecHash],
		Pipeline:   m[MetaPipeline],
		Lineage:    m[MetaLineage],
		InstanceID: m[MetaInstance],
		Handle: encodeHandle(handle{JobID: st.ID, Namespace: st.Namespace, Region: region, JobModifyIndex: st.JobModifyIndex,
			Task: task, Address: m[MetaComponent], Pipeline: m[MetaPipeline], Lineage: m[MetaLineage]}),
		Fingerprint: fingerprint(st.ID, st.JobModifyIndex),
		Ports:       providers.ParsePorts(m[MetaPorts]),
	}
	switch {
	case st.Stop:
		o.Detail = fmt.Sprintf("stopped (job %s is stopped in Nomad)", st.ID)
	default:
		o.Detail = fmt.Sprintf("%s (job %s)", st.Status, st.ID)
	}
	return o
}

// HealthHost implements providers.HealthHostResolver. Readiness on Nomad
// comes first from Nomad itself: it waits until every allocation the job
// asks for runs and Nomad sees its service check pass, failing at once
// when Nomad judges one unhealthy or the job dies. It then returns the
// address of the node that runs an allocation, where the engine's own
// probe reaches the component's HEALTH_PORT (a static port).
func (p *Provider) HealthHost(ctx context.Context, h providers.Handle) (string, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return "", err
	}
	for {
		o, err := p.Observe(ctx, h)
		switch {
		case err != nil:
			return "", err
		case !o.Exists:
			return "", fmt.Errorf("job %s no longer exists", hd.JobID)
		case !o.Running:
			return "", errors.New(o.Detail)
		case o.Health == providers.HealthUnhealthy:
			return "", fmt.Errorf("Nomad reports it unhealthy: %s", o.Detail)
		case o.Health == providers.HealthHealthy:
			host, err := p.nodeAddress(ctx, hd, LabelHealth, LabelPort)
			if err != nil {
				return "", err
			}
			if host == "" {
				return "", fmt.Errorf("no address for job %s: its allocation has no port %s", hd.JobID, LabelHealth)
			}
			return host, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for Nomad to report job %s healthy (%s): %w", hd.JobID, o.Detail, ctx.Err())
		case <-time.After(p.opts.PollInterval):
		}
	}
}

// nodeAddress is the host IP of the newest running allocation of the job,
// as Nomad allocated the first of labels; "" when none runs.
func (p *Provider) nodeAddress(ctx context.Context, hd handle, labels ...string) (string, error) {
	c, err := p.api()
	if err != nil {
		return "", err
	}
	var allocs []*api.AllocationListStub
	err = p.read(ctx, "list allocations of job "+hd.JobID, func(ctx context.Context) error {
		var err error
		allocs, _, err = c.Jobs().Allocations(hd.JobID, false, queryOptions(ctx, hd.Namespace, hd.Region))
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Slice(allocs, func(i, j int) bool { return allocs[i].CreateIndex > allocs[j].CreateIndex })
	for _, stub := range allocs {
		if stub.ClientStatus != api.AllocClientStatusRunning || stub.DesiredStatus != api.AllocDesiredStatusRun {
			continue
		}
		var al *api.Allocation
		err := p.read(ctx, "read allocation "+stub.ID, func(ctx context.Context) error {
			var err error
			al, _, err = c.Allocations().Info(stub.ID, queryOptions(ctx, hd.Namespace, hd.Region))
			return err
		})
		if err != nil {
			return "", err
		}
		if host := hostOf(al, labels); host != "" {
			return host, nil
		}
	}
	return "", nil
}

// hostOf finds the host IP of the first of labels in an allocation.
func hostOf(al *api.Allocation, labels []string) string {
	if al == nil || al.AllocatedResources == nil {
		return ""
	}
	sh := al.AllocatedResources.Shared
	for _, l := range labels {
		for _, pm := range sh.Ports {
			if pm.Label == l && pm.HostIP != "" {
				return pm.HostIP
			}
		}
		for _, nw := range sh.Networks {
			for _, ps := range [][]api.Port{nw.ReservedPorts, nw.DynamicPorts} {
				for _, pt := range ps {
					if pt.Label == l && nw.IP != "" {
						return nw.IP
					}
				}
			}
		}
	}
	return ""
}
