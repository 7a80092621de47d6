package controlplane

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/metadata"

	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// BenchmarkHeartbeat measures the heartbeat path over real gRPC on
// loopback, client included (run with -cpuprofile to see the server's part).
func BenchmarkHeartbeat(b *testing.B) {
	for _, tc := range []struct {
		name   string
		tokens bool
		legacy bool
	}{{"v1", false, false}, {"v1-token", true, false}, {"legacy", false, true}} {
		b.Run(tc.name, func(b *testing.B) {
			var opts []harnessOption
			if !tc.tokens {
				opts = append(opts, permissive)
			}
			h := newHarness(b, opts...)
			ids := []string{"ledger", "ttp", "out"}
			ctxs := []context.Context{context.Background(), context.Background(), context.Background()}
			if tc.tokens {
				ctxs = []context.Context{as(h.ledgerTok()), as(h.ttpTok()), as(h.outTok())}
			}
			sids := make([]string, 3)
			for i, id := range ids {
				if tc.legacy {
					ack, err := h.legacy.Register(ctxs[i], &flowctlpb.ServiceInfo{ComponentId: id})
					if err != nil {
						b.Fatal(err)
					}
					sids[i] = ack.ServiceId
				} else {
					r, err := h.v1.RegisterComponent(ctxs[i], &flowctlv1.RegisterRequest{ComponentId: id})
					if err != nil {
						b.Fatal(err)
					}
					sids[i] = r.ServiceId
				}
			}
			var n atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				k := int(n.Add(1)) % 3
				for pb.Next() {
					var err error
					if tc.legacy {
						_, err = h.legacy.Heartbeat(ctxs[k], &flowctlpb.ServiceHeartbeat{ServiceId: sids[k], Metrics: map[string]float64{"a": 1}})
					} else {
						_, err = h.v1.Heartbeat(ctxs[k], &flowctlv1.HeartbeatRequest{ServiceId: sids[k], Metrics: map[string]string{"a": "1"}})
					}
					if err != nil {
						panic(fmt.Sprint(err))
					}
				}
			})
		})
	}
}

// BenchmarkHeartbeatHandler measures the control plane's own work per
// heartbeat (token check, registry update), without gRPC's transport.
func BenchmarkHeartbeatHandler(b *testing.B) {
	for _, tokensOn := range []bool{false, true} {
		name := "tokenless"
		if tokensOn {
			name = "token"
		}
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, permissive)
			ctx := context.Background()
			if tokensOn {
				ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+h.ledgerTok()))
			}
			v1 := &v1Service{s: h.srv}
			if _, err := v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: "ledger"}); err != nil {
				b.Fatal(err)
			}
			req := &flowctlv1.HeartbeatRequest{ServiceId: "ledger", Metrics: map[string]string{"a": "1"}}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v1.Heartbeat(ctx, req); err != nil {
						panic(err)
					}
				}
			})
		})
	}
}
