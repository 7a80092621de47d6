package component_test

import (
	"testing"
	"time"

	"github.com/flowctl/flowctl/pkg/component"
)

// TestFromEnvReadsTheVariablesFlowctlInjects spells the variable names out
// rather than through pkg/contract: they are what components in the wild
// read, and renaming one must break this test.
func TestFromEnvReadsTheVariablesFlowctlInjects(t *testing.T) {
	all := []string{
		"FLOWCTL_COMPONENT_ID", "COMPONENT_ID", "SERVICE_ID", "FLOWCTL_SERVICE_ID",
		"ENABLE_FLOWCTL", "FLOWCTL_ENDPOINT", "FLOWCTL_COMPONENT_TOKEN", "COMPONENT_TOKEN",
		"FLOWCTL_STATE_DIR", "FLOWCTL_HEARTBEAT_INTERVAL", "HEALTH_PORT", "PORT",
		"FLOWCTL_BIND_ADDRESS", "FLOWCTL_DATA_PLANE_KEY", "FLOWCTL_PIPELINE", "FLOWCTL_DATA_PLANE_INSECURE",
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want component.Config
	}{
		{"nothing set", nil, component.Config{Endpoint: "localhost:8080"}},
		{"everything flowctl injects", map[string]string{
			"FLOWCTL_COMPONENT_ID": "ledger", "COMPONENT_ID": "other", "ENABLE_FLOWCTL": "TRUE",
			"FLOWCTL_ENDPOINT": "10.0.0.1:9090", "FLOWCTL_COMPONENT_TOKEN": "tok", "COMPONENT_TOKEN": "old",
			"FLOWCTL_STATE_DIR": "/var/state", "FLOWCTL_HEARTBEAT_INTERVAL": "10s", "HEALTH_PORT": "8088", "PORT": "9000",
			"FLOWCTL_BIND_ADDRESS": "0.0.0.0", "FLOWCTL_DATA_PLANE_KEY": "MCowBQYDK2VwAyEA", "FLOWCTL_PIPELINE": "quickstart",
		}, component.Config{
			ID: "ledger", Enabled: true, Endpoint: "10.0.0.1:9090", Token: "tok", StateDir: "/var/state",
			Heartbeat: 10 * time.Second, HealthPort: 8088, Port: 9000,
			BindAddress: "0.0.0.0", DataPlaneKey: "MCowBQYDK2VwAyEA", Pipeline: "quickstart",
		}},
		{"a component run by hand", map[string]string{"FLOWCTL_DATA_PLANE_INSECURE": "true"},
			component.Config{Endpoint: "localhost:8080", InsecureDataPlane: true}},
		{"the names older tools set", map[string]string{
			"SERVICE_ID": "ttp", "FLOWCTL_SERVICE_ID": "other", "COMPONENT_TOKEN": "tok", "ENABLE_FLOWCTL": "yes",
			"FLOWCTL_HEARTBEAT_INTERVAL": "often",
		}, component.Config{ID: "ttp", Endpoint: "localhost:8080", Token: "tok"}},
		{"only FLOWCTL_SERVICE_ID", map[string]string{"FLOWCTL_SERVICE_ID": "sink"},
			component.Config{ID: "sink", Endpoint: "localhost:8080"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range all {
				t.Setenv(k, tc.env[k])
			}
			if got := component.FromEnv(); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
