package serve

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
)

// The wait for a registration ends at once on a refusal of the instance's
// call; refusals of an earlier instance, of another component or from
// before the instance started do not end it, and what could not be tied to
// a component is said when it gives up.
func TestWaitRegisteredEndsOnTheInstancesRefusal(t *testing.T) {
	c := &config.Component{Kind: config.KindProcessor, ID: "cur", Register: true}
	since := time.Now()
	after, before := since.Add(time.Second), since.Add(-time.Minute)
	unmanaged := controlplane.Registration{ServiceID: "svc-1", RegisteredAt: after, Unattributed: "it sent no component id, no health endpoint, and it could not be attested: no socket"}
	for _, tc := range []struct {
		name     string
		refusals []controlplane.Refusal
		want     []string // fragments of the error; the wait times out unless the first is "refused"
	}{
		{"tokenless call of the component", []controlplane.Refusal{{At: after, Component: "processor.cur", Reason: "missing", Detail: "no token (auth = required; this process could not be attested because …)"}},
			[]string{"refused its registration: missing: no token (auth = required; this process could not be attested because"}},
		{"this instance's token", []controlplane.Refusal{{At: after, Component: "processor.cur", InstanceID: "i-new", Reason: "impersonation", Detail: "x"}},
			[]string{"refused its registration: impersonation"}},
		{"an earlier instance's token", []controlplane.Refusal{{At: after, Component: "processor.cur", InstanceID: "i-old", Reason: "replaced_instance", Detail: "x"}},
			[]string{"deadline exceeded", "registered as unmanaged svc-1, not attributed because it sent no component id"}},
		{"before the instance started", []controlplane.Refusal{{At: before, Component: "processor.cur", Reason: "missing", Detail: "x"}},
			[]string{"deadline exceeded"}},
		{"tied to no component", []controlplane.Refusal{{At: after, Peer: "127.0.0.1:5555", Reason: "missing", Detail: "no token"}},
			[]string{"deadline exceeded", "refused a call from 127.0.0.1:5555 it could not tie to a component: missing: no token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait := WaitRegistered(
				func() ([]controlplane.Registration, error) { return []controlplane.Registration{unmanaged}, nil },
				func() ([]controlplane.Refusal, error) { return tc.refusals, nil })
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := wait(ctx, c, "i-new", since)
			if err == nil {
				t.Fatal("the wait succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.HasPrefix(tc.want[0], "refused") == (ctx.Err() != nil) {
				t.Errorf("ended by its deadline: %v, want %v", ctx.Err() != nil, !strings.HasPrefix(tc.want[0], "refused"))
			}
		})
	}
}
