package providers

import (
	"sort"
	"strconv"
	"strings"
)

// FormatPorts writes the ports a component was started with (PORT,
// HEALTH_PORT) as "HEALTH_PORT=9091,PORT=9090", the form executors keep on
// their objects (a Docker label, Nomad job meta) so that an adopted object
// keeps its ports.
func FormatPorts(ports map[string]int) string {
	keys := make([]string, 0, len(ports))
	for k := range ports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(ports[k])
	}
	return strings.Join(parts, ",")
}

// ParsePorts reads what FormatPorts wrote; nil when it holds no port.
func ParsePorts(s string) map[string]int {
	out := map[string]int{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if n, err := strconv.Atoi(v); err == nil && n > 0 && k != "" {
			out[k] = n
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
