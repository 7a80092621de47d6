package nomad

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/nomad/nomadtest"
	"github.com/flowctl/flowctl/internal/testutil/golden"
)

// goldenPipeline has one component per translation the golden files pin.
const goldenPipeline = `
pipeline "ttp" {
  executor = "nomad"
  nomad {
    region      = "eu"
    namespace   = "stellar"
    datacenters = ["eu-b", "eu-a"]
  }
}

# docker: image, command and args, health, resources, ports, volume, pull.
source "ledger" {
  image   = "withobsrvr/stellar-live-source:1.2.3"
  command = ["/bin/source"]
  args    = ["--network", "testnet"]
  pull    = "always"
  env     = { STELLAR_NETWORK = "testnet" }
  health {
    http         = "/health"
    port         = 8088
    interval     = "5s"
    timeout      = "2s"
    start_period = "30s"
    liveness     = true
  }
  resources {
    cpu            = "500m"
    memory         = "256Mi"
    cpu_request    = "250m"
    memory_request = "128Mi"
  }
  restart {
    policy      = "on-failure"
    max_retries = 3
    backoff {
      initial = "2s"
      max     = "1m"
    }
  }
  port {
    name           = "grpc"
    container_port = 50051
    host_port      = 50051
  }
  port {
    name           = "metrics"
    container_port = 9100
  }
  volume {
    host_path      = "/var/lib/ledger"
    container_path = "/data"
    read_only      = true
  }
  stop_timeout = "20s"
  replicas     = 2
}

# raw_exec: a command, a tcp check, never restarted.
processor "ttp" {
  command = ["./bin/ttp", "--fast"]
  args    = ["--verbose"]
  inputs  = [source.ledger]
  health {
    tcp = true
  }
  resources {
    cpu    = "1"
    memory = "1Gi"
  }
  restart {
    policy = "never"
  }
}

# docker: no health, restarted for ever.
sink "consumer" {
  image  = "withobsrvr/consumer-app:latest"
  inputs = [processor.ttp]
  restart {
    policy = "always"
  }
}
`

// goldenSpecs are the specs apply would start the golden pipeline's
// components with (ports and identity fixed).
func goldenSpecs(t *testing.T) ([]*providers.ComponentSpec, Connection) {
	t.Helper()
	p, diags := config.LoadBytes([]byte(goldenPipeline), "pipeline.hcl", config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("golden pipeline: %s", config.FormatDiagnostics(diags))
	}
	var specs []*providers.ComponentSpec
	for i, c := range p.Components {
		ports := map[string]int{"PORT": 9000 + i, "HEALTH_PORT": 8000 + i}
		if c.Health != nil && c.Health.Port != 0 {
			ports["HEALTH_PORT"] = c.Health.Port
		}
		env := map[string]string{"FLOWCTL_COMPONENT_ID": c.ID, "FLOWCTL_PIPELINE": p.Name, "FLOWCTL_ENDPOINT": "flowctl.example.com:8080"}
		for k, v := range c.Env {
			env[k] = v.Value
		}
		specs = append(specs, &providers.ComponentSpec{
			Pipeline: p.Name, Lineage: "11111111-2222-3333-4444-555555555555", InstanceID: "instance-" + c.ID,
			SpecHash: c.SpecHash(nil), Component: c, Env: env, Ports: ports,
		})
	}
	return specs, ResolveConnection(p.Nomad, p.Namespace, func(string) string { return "" })
}

// TestJobsMatchGoldenFiles pins the job each component becomes, as sent to
// Nomad, nulls left out.
func TestJobsMatchGoldenFiles(t *testing.T) {
	specs, conn := goldenSpecs(t)
	for _, spec := range specs {
		t.Run(spec.Component.ID, func(t *testing.T) {
			job, err := Job(spec, conn)
			if err != nil {
				t.Fatal(err)
			}
			got := jobJSON(t, job)
			path := filepath.Join("testdata", "jobs", spec.Component.ID+".json")
			golden.Check(t, path, got)
		})
	}
}

// jobJSON is the job as the client encodes it, indented, nulls and empty
// values left out.
func jobJSON(t *testing.T, job *api.Job) []byte {
	t.Helper()
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(prune(v), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			e = prune(e)
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = e
		}
		if len(x) == 0 {
			return nil
		}
	case []any:
		for i, e := range x {
			x[i] = prune(e)
		}
		if len(x) == 0 {
			return nil
		}
	case string:
		if x == "" {
			return nil
		}
	case bool:
		if !x {
			return nil
		}
	}
	return v
}

// TestGoldenJobsAreValidForNomad registers every golden job with the
// emulator, which refuses what Nomad would.
func TestGoldenJobsAreValidForNomad(t *testing.T) {
	specs, conn := goldenSpecs(t)
	emu := nomadtest.Start(t, nomadtest.Options{})
	c, err := api.NewClient(&api.Config{Address: emu.URL()})
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range specs {
		job, err := Job(spec, conn)
		if err != nil {
			t.Fatal(err)
		}
		resp, _, err := c.Jobs().Validate(job, nil)
		if err != nil || len(resp.ValidationErrors) > 0 {
			t.Errorf("%s: %v %v", spec.Address(), err, resp)
		}
	}
}

func TestResourcesConvertQuantitiesToMHzAndMiB(t *testing.T) {
	for _, tc := range []struct {
		name             string
		in               config.Resources
		cpu, mem, memMax int
	}{
		{"request wins", config.Resources{CPULimit: 500, CPURequest: 250, MemoryLimit: 256 << 20, MemoryRequest: 128 << 20}, 250, 128, 256},
		{"limit alone", config.Resources{CPULimit: 2000, MemoryLimit: 1 << 30}, 2000, 1024, 0},
		{"rounded up", config.Resources{CPURequest: 1, MemoryRequest: 100_000_000}, 1, 96, 0},
		{"unset", config.Resources{}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := resources(tc.in)
			if got := derefInt(r.CPU); got != tc.cpu {
				t.Errorf("cpu = %d, want %d", got, tc.cpu)
			}
			if got := derefInt(r.MemoryMB); got != tc.mem {
				t.Errorf("memory = %d, want %d", got, tc.mem)
			}
			if got := derefInt(r.MemoryMaxMB); got != tc.memMax {
				t.Errorf("memory_max = %d, want %d", got, tc.memMax)
			}
		})
	}
}

func derefInt(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}

func TestRestartPoliciesStayValidForNomad(t *testing.T) {
	for _, r := range []config.Restart{
		{Policy: config.RestartOnFailure, MaxRetries: 1000, Backoff: config.Backoff{Initial: config.Duration(10e9), Max: config.DefaultBackoffMax}},
		{Policy: config.RestartAlways, MaxRetries: config.UnlimitedRetries, Backoff: config.Backoff{Initial: config.Duration(3e9), Max: config.Duration(1e9)}},
		{Policy: config.RestartOnFailure, MaxRetries: 0, Backoff: config.Backoff{Initial: 0, Max: config.DefaultBackoffMax}},
	} {
		rp := restartPolicy(r)
		if time.Duration(*rp.Attempts)*(*rp.Delay) > *rp.Interval || *rp.Interval < restartMinInterval {
			t.Errorf("%+v: restart %d attempts, delay %v, interval %v is refused by Nomad", r, *rp.Attempts, *rp.Delay, *rp.Interval)
		}
	}
}
