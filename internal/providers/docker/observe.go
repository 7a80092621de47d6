package docker

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Observe implements providers.Provider by inspecting the container.
func (p *Provider) Observe(ctx context.Context, h providers.Handle) (providers.Observed, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return providers.Observed{}, err
	}
	cli, err := p.api(ctx)
	if err != nil {
		return providers.Observed{}, err
	}
	ins, err := cli.ContainerInspect(ctx, hd.ID)
	if cerrdefs.IsNotFound(err) {
		return providers.Observed{Address: hd.Address}, nil
	}
	if err != nil {
		return providers.Observed{}, fmt.Errorf("inspect container %s: %w", hd.Name, err)
	}
	return observed(ins), nil
}

// observed is what an inspected container tells.
func observed(ins container.InspectResponse) providers.Observed {
	var labels map[string]string
	var env []string
	if ins.Config != nil {
		labels, env = ins.Config.Labels, ins.Config.Env
	}
	name := strings.TrimPrefix(ins.Name, "/")
	o := providers.Observed{
		Address:    labels[LabelComponent],
		Exists:     true,
		SpecHash:   labels[LabelSpecHash],
		Pipeline:   labels[LabelPipeline],
		Lineage:    labels[LabelLineage],
		InstanceID: labels[LabelInstance],
		Handle: encodeHandle(handle{ID: ins.ID, Name: name, Address: labels[LabelComponent],
			Pipeline: labels[LabelPipeline], Lineage: labels[LabelLineage]}),
		Ports: portsOf(env),
	}
	st := ins.State
	if st == nil {
		o.Detail = "container state unknown"
		o.Fingerprint = fingerprint(ins.ID, o.SpecHash)
		return o
	}
	if t, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil && t.Year() > 1 {
		o.StartedAt = t
	}
	o.Fingerprint = fingerprint(ins.ID, o.SpecHash)
	if st.Health != nil {
		o.Health = string(st.Health.Status)
	}
	id := shortID(ins.ID)
	switch {
	case st.Running && st.Paused:
		o.Detail = fmt.Sprintf("paused (container %s)", id)
	case st.Running && st.Restarting:
		o.Detail = fmt.Sprintf("restarting (container %s)", id)
	case st.Running:
		o.Running = true
		o.Detail = fmt.Sprintf("running (container %s", id)
		if o.Health != "" {
			o.Detail += ", " + o.Health
		}
		o.Detail += ")"
	case st.Status == container.StateCreated:
		o.Detail = fmt.Sprintf("created but never started (container %s)", id)
		if st.Error != "" {
			o.Detail += ": " + st.Error
		}
	default:
		code := st.ExitCode
		o.ExitCode = &code
		o.Detail = fmt.Sprintf("exited with code %d", code)
		if st.OOMKilled {
			o.Detail += " (out of memory)"
		}
		if st.Error != "" {
			o.Detail += ": " + st.Error
		}
	}
	return o
}

// fingerprint changes when the container is replaced (its ID) or
// relabelled (its hash). A container flowctl restarts is a new container
// (restart policy "no"; a restart is a remove and a create), and whether a
// container runs is compared on its own.
func fingerprint(id, hash string) string {
	h := hash
	if len(h) > 12 {
		h = h[:12]
	}
	return "container=" + shortID(id) + ",hash=" + h
}

// portsOf reads PORT and HEALTH_PORT from a container's environment, so an
// adopted container keeps the ports it was started with.
func portsOf(env []string) map[string]int {
	names := contract.PortNames()
	out := map[string]int{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, k) {
			continue
		}
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			out[k] = n
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// List implements providers.Provider: every container, running or not,
// labelled with the pipeline, whichever state started it (Lineage tells).
// It asks the engine once: the list carries labels and state, and the
// ports a container was started with are in its io.flowctl.ports label.
// StartedAt is left zero (Observe tells it).
func (p *Provider) List(ctx context.Context, pipeline string) ([]providers.Observed, error) {
	cli, err := p.api(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := listContainers(ctx, cli, pipeline, "")
	if err != nil {
		return nil, err
	}
	out := make([]providers.Observed, 0, len(cs))
	for _, c := range cs {
		out = append(out, listed(c))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		return out[i].Fingerprint < out[j].Fingerprint
	})
	return out, nil
}

var (
	exitedStatus = regexp.MustCompile(`^Exited \((-?\d+)\)`)
	healthStatus = regexp.MustCompile(`\((healthy|unhealthy|health: starting)\)$`)
)

// listed is what a container list entry tells, in Observe's terms.
func listed(c container.Summary) providers.Observed {
	l := c.Labels
	name := c.ID
	if len(c.Names) > 0 {
		name = strings.TrimPrefix(c.Names[0], "/")
	}
	o := providers.Observed{
		Address:    l[LabelComponent],
		Exists:     true,
		Running:    c.State == container.StateRunning,
		SpecHash:   l[LabelSpecHash],
		Pipeline:   l[LabelPipeline],
		Lineage:    l[LabelLineage],
		InstanceID: l[LabelInstance],
		Handle: encodeHandle(handle{ID: c.ID, Name: name, Address: l[LabelComponent],
			Pipeline: l[LabelPipeline], Lineage: l[LabelLineage]}),
		Fingerprint: fingerprint(c.ID, l[LabelSpecHash]),
		Ports:       providers.ParsePorts(l[LabelPorts]),
	}
	if m := healthStatus.FindStringSubmatch(c.Status); m != nil {
		o.Health = strings.TrimPrefix(m[1], "health: ")
	}
	id := shortID(c.ID)
	switch {
	case o.Running:
		o.Detail = fmt.Sprintf("running (container %s", id)
		if o.Health != "" {
			o.Detail += ", " + o.Health
		}
		o.Detail += ")"
	case c.State == container.StateCreated:
		o.Detail = fmt.Sprintf("created but never started (container %s)", id)
	default:
		if m := exitedStatus.FindStringSubmatch(c.Status); m != nil {
			if code, err := strconv.Atoi(m[1]); err == nil {
				o.ExitCode = &code
				o.Detail = fmt.Sprintf("exited with code %d", code)
				break
			}
		}
		o.Detail = fmt.Sprintf("%s (container %s)", c.State, id)
	}
	return o
}

// listContainers lists every container labelled with the pipeline (and the
// lineage, unless it is empty), running or not.
func listContainers(ctx context.Context, cli *client.Client, pipeline, lineage string) ([]container.Summary, error) {
	args := filters.NewArgs(filters.Arg("label", LabelPipeline+"="+pipeline))
	if lineage != "" {
		args.Add("label", LabelLineage+"="+lineage)
	}
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers of %s: %w", pipeline, err)
	}
	return cs, nil
}

// HealthHost implements providers.HealthHostResolver: the container's
// address on the pipeline network, where probes from the host reach it.
func (p *Provider) HealthHost(ctx context.Context, h providers.Handle) (string, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return "", err
	}
	cli, err := p.api(ctx)
	if err != nil {
		return "", err
	}
	ins, err := cli.ContainerInspect(ctx, hd.ID)
	if err != nil {
		return "", fmt.Errorf("inspect container %s: %w", hd.Name, err)
	}
	if ins.NetworkSettings != nil {
		if ep := ins.NetworkSettings.Networks[NetworkName(hd.Pipeline)]; ep != nil && ep.IPAddress != "" {
			return ep.IPAddress, nil
		}
		for _, ep := range ins.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress != "" {
				return ep.IPAddress, nil
			}
		}
	}
	return "", fmt.Errorf("container %s has no address on network %s (is it running?)", hd.Name, NetworkName(hd.Pipeline))
}
