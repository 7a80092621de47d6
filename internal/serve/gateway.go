package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

// defaultGatewayCheckInterval is how often a serve that does not listen on
// the Docker bridge's gateway looks for a component that needs it.
const defaultGatewayCheckInterval = time.Second

// gatewayDecision says whether serve listens on the Docker bridge's gateway
// now, and why (or why not): exposure by intent, the bridge is opened only
// for a pipeline that has components in containers on it.
type gatewayDecision struct {
	// host is the gateway address to listen on; "" when not listening.
	host string
	// why is said in serve's first log lines and recorded for status.
	why string
	// later: serve keeps looking, and listens once a component that needs
	// it is recorded (an apply adds one).
	later bool
}

// decideGateway decides from the options, the machine and the components
// the state records.
func (s *server) decideGateway() gatewayDecision {
	switch {
	case !s.opts.DockerGateway:
		return gatewayDecision{why: "not listening on the Docker bridge gateway: turned off (--no-docker-gateway)"}
	case !isLoopbackListen(s.opts.Listen):
		return gatewayDecision{why: "not listening on the Docker bridge gateway: the gRPC address is not loopback-only, containers reach it there"}
	}
	users, err := bridgeUsers(s.store, s.provs)
	if err != nil {
		return gatewayDecision{why: "not listening on the Docker bridge gateway yet: " + err.Error(), later: true}
	}
	if len(users) == 0 {
		return gatewayDecision{why: "not listening on the Docker bridge gateway: no component runs in a container on the bridge (it opens when one is applied)", later: true}
	}
	gw := DockerGatewayHost()
	if gw == "" {
		return gatewayDecision{why: "not listening on the Docker bridge gateway: this machine has no docker0 bridge (yet)", later: true}
	}
	return gatewayDecision{host: gw, why: fmt.Sprintf("listening on the Docker bridge gateway %s: containers of %s reach the control plane there", gw, strings.Join(users, ", "))}
}

// bridgeUsers are the components the state records on a provider whose
// containers reach the host through the bridge
// (providers.BridgeGatewayUser), sorted.
func bridgeUsers(store *state.Store, provs *providers.Registry) ([]string, error) {
	var recs []*state.Record
	if err := store.View(func(tx *state.Tx) error {
		var err error
		recs, err = tx.Components()
		return err
	}); err != nil {
		return nil, fmt.Errorf("read the state's components: %w", err)
	}
	expected, err := expectedOnBridge(store)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range recs {
		p, err := provs.Get(r.Provider)
		if err == nil && providers.ReachesHostThroughBridge(p) {
			seen[r.Address] = true
		}
	}
	for _, a := range expected {
		seen[a] = true
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}

// bridgeKey keeps, in the serve namespace, the components the latest
// apply is about to run in containers on the bridge (ExpectBridge).
const bridgeKey = "bridge"

// ExpectBridge records which components of p run in containers that reach
// the host through the Docker bridge (none when p is nil or has none), so
// that the control plane listens on the bridge's gateway before they start
// — a component of the ecosystem that finds nothing there gives up at
// once. apply calls it (through Ensure) before it starts anything.
func ExpectBridge(store *state.Store, p *config.Pipeline) error {
	var want []string
	if p != nil {
		provs := backgroundProviders(store.Path(), slog.New(slog.DiscardHandler))
		for _, c := range p.Components {
			if prov, err := provs.Get(c.Executor); err == nil && providers.ReachesHostThroughBridge(prov) {
				want = append(want, c.Address())
			}
		}
	}
	sort.Strings(want)
	v, err := json.Marshal(want)
	if err != nil {
		return err
	}
	if old, err := expectedOnBridge(store); err == nil && slices.Equal(old, want) {
		return nil // nothing to write
	}
	if err := store.Update(func(tx *state.Tx) error { return tx.PutData(RecordNamespace, bridgeKey, v) }); err != nil {
		return fmt.Errorf("record the components on the Docker bridge: %w", err)
	}
	return nil
}

// expectedOnBridge reads what ExpectBridge recorded.
func expectedOnBridge(store *state.Store) ([]string, error) {
	var out []string
	err := store.View(func(tx *state.Tx) error {
		v := tx.GetData(RecordNamespace, bridgeKey)
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("read the components on the Docker bridge: %w", err)
	}
	return out, nil
}

// bridgeWait bounds AwaitBridge: a control plane looks for components
// that need the bridge every second.
const bridgeWait = 15 * time.Second

// AwaitBridge waits until the control plane serving store listens on the
// Docker bridge's gateway, when it is to (ExpectBridge named components
// and the control plane says it will open it once it sees them). It
// returns at once when no control plane runs, when none is expected there,
// or when this machine has no bridge.
func AwaitBridge(ctx context.Context, store *state.Store) error {
	if DockerGatewayHost() == "" {
		return nil
	}
	deadline := time.Now().Add(bridgeWait)
	for {
		rec, err := Running(store)
		if err != nil || rec == nil || len(rec.AlsoGRPC) > 0 || !rec.GatewayPending {
			return err
		}
		want, err := expectedOnBridge(store)
		if err != nil || len(want) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the control plane (pid %d) did not open the Docker bridge gateway within %s for %s: %s", rec.Process.PID, bridgeWait, strings.Join(want, ", "), rec.Gateway)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watchGateway looks for a component that needs the gateway every
// interval until one appears (then it listens there, serves gRPC on it
// and records the address) or ctx ends.
func (s *server) watchGateway(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) {
	every := s.opts.GatewayCheckInterval
	if every <= 0 {
		every = defaultGatewayCheckInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.store.Settled(ctx, settleQuiet, settleMax)
		d := s.decideGateway()
		if d.host == "" {
			if !d.later {
				return
			}
			continue
		}
		s.openGateway(ctx, d, wg, errc)
		return
	}
}

// openGateway listens on the gateway d names with the gRPC port, serves
// gRPC there and adds the address to the serve record.
func (s *server) openGateway(ctx context.Context, d gatewayDecision, wg *sync.WaitGroup, errc chan<- error) {
	_, port, _ := net.SplitHostPort(s.addrs.GRPC)
	l, err := net.Listen("tcp", net.JoinHostPort(d.host, port))
	if err != nil {
		s.log.Warn("serve: cannot listen on the Docker bridge gateway; containers will not reach the control plane", "host", d.host, "err", err)
		return
	}
	if ctx.Err() != nil {
		_ = l.Close()
		return
	}
	addr := l.Addr().String()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.gs.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			select {
			case errc <- fmt.Errorf("serve: gRPC on %s: %w", addr, err):
			default:
			}
		}
	}()
	s.log.Info("serve: "+d.why, "address", addr)
	if err := recordGateway(s.store, s.rec.RunID, addr, d.why); err != nil {
		s.log.Warn("serve: could not record the gateway listener in the state", "err", err)
	}
}

// recordGateway adds a gRPC address to the serve record of run runID and
// says why.
func recordGateway(store *state.Store, runID, addr, why string) error {
	return store.Update(func(tx *state.Tx) error {
		cur, err := getRecord(tx)
		if err != nil || cur == nil || cur.RunID != runID {
			return err
		}
		cur.AlsoGRPC = append(cur.AlsoGRPC, addr)
		cur.Gateway, cur.GatewayPending = why, false
		return writeRecord(tx, cur)
	})
}

// writeRecord writes r as the state's serve record.
func writeRecord(tx *state.Tx, r *Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.PutData(RecordNamespace, RecordKey, v)
}
