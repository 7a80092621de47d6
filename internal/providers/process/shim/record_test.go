//go:build linux

package shim

import (
	"maps"
	"testing"
)

func TestPortsOfTakesOnlyPortNumbers(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want map[string]int
	}{
		{[]string{"PORT=8080", "HEALTH_PORT=9090", "OTHER=1"}, map[string]int{"PORT": 8080, "HEALTH_PORT": 9090}},
		{[]string{"PORT=", "HEALTH_PORT=abc", "XPORT=1"}, nil},
		{[]string{"PORT=0", "HEALTH_PORT=-3"}, nil},
		{nil, nil},
	} {
		if got := portsOf(tc.env); !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("portsOf(%q) = %v, want %v", tc.env, got, tc.want)
		}
	}
}
