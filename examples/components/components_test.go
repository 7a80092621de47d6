package components

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/tokens"
	"github.com/flowctl/flowctl/pkg/component"
	"github.com/flowctl/flowctl/pkg/contract"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// build compiles the three example components (static, as the images use
// them) into a temporary folder.
func build(t *testing.T) (dir string) {
	t.Helper()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./examples/components/counter-source", "./examples/components/transform-processor", "./examples/components/file-sink")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// dataKey is the data-plane key of these tests: the components get its
// public half, as flowctl gives it, and the tests call them with a data
// token of the relay, as flowctl's relay does.
var dataKey = sync.OnceValue(func() *tokens.DataKey {
	k, err := tokens.NewDataKey()
	if err != nil {
		panic(err)
	}
	return k
})

// dialData connects to a component's data plane as the relay.
func dialData(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	tok, err := tokens.NewDataIssuer(dataKey(), "").Issue(contract.DataPlaneRelaySubject)
	if err != nil {
		t.Fatal(err)
	}
	c, err := component.Dial(addr, component.WithDataToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// proc is a running example component.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // its data endpoint

	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
}

var listening = regexp.MustCompile(`msg="data plane listening" addr=(\S+)`)

// run starts bin with env (and no other environment: PORT unset, the
// component listens on an ephemeral loopback port, which it logs) and waits
// for its data endpoint.
func run(t *testing.T, bin string, env ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(bin), cmd: exec.Command(bin), exited: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOG_LEVEL=debug", contract.EnvDataPlaneKey + "=" + dataKey().PublicString()}, env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s stderr:\n%s", p.name, p.stderr.String())
			p.mu.Unlock()
		}
	})
	select {
	case p.addr = <-addr:
	case <-p.exited:
		_ = p.cmd.Wait()
		t.Fatalf("%s exited before serving: %v\n%s", p.name, p.cmd.ProcessState, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no data endpoint logged", p.name)
	}
	return p
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		<-p.exited
		waited <- p.cmd.Wait()
	}()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("%s on SIGTERM: %v", p.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s ignored SIGTERM", p.name)
	}
}

// moved is what one relay pass did.
type moved struct {
	first, last string // ids of the first and last events delivered
	lastToken   string // resume token of the last event delivered
	acked       int64  // events the sink acknowledged
}

// relay moves the events of one StreamEvents call through the processor
// into the sink, as flowctl's relay will, stopping after limit events
// (0: when the source's stream ends); then it closes the sink's stream so
// that the sink acknowledges what it got.
func relay(t *testing.T, src, processor, sink *proc, req *flowctlv1.StreamRequest, limit int) moved {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dial := func(p *proc) *grpc.ClientConn { return dialData(t, p.addr) }
	srcConn, procConn, sinkConn := dial(src), dial(processor), dial(sink)
	srcCtx, stopSource := context.WithCancel(ctx)
	defer stopSource()
	events, err := flowctlv1.NewSourceServiceClient(srcConn).StreamEvents(srcCtx, req)
	if err != nil {
		t.Fatal(err)
	}
	processing, err := flowctlv1.NewProcessorServiceClient(procConn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	consuming, err := flowctlv1.NewConsumerServiceClient(sinkConn).Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fed := make(chan error, 1)
	go func() {
		defer stopSource()
		for n := 0; limit == 0 || n < limit; n++ {
			ev, err := events.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = processing.Send(ev)
			}
			if err != nil {
				cancel()
				fed <- fmt.Errorf("source → processor: %w", err)
				return
			}
		}
		fed <- processing.CloseSend()
	}()
	var m moved
	for {
		ev, err := processing.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			err = consuming.Send(ev)
		}
		if err != nil {
			t.Fatalf("processor → sink: %v (%v)", err, <-fed)
		}
		if m.first == "" {
			m.first = ev.Id
		}
		m.last, m.lastToken = ev.Id, ev.Metadata[component.ResumeTokenKey]
	}
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	resp, err := consuming.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	m.acked = resp.EventsConsumed
	return m
}

func TestExampleComponentsMoveEventsFromCounterToFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example components")
	}
	bin := build(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out", "events.ndjson")
	counterEnv := []string{"FLOWCTL_COMPONENT_ID=counter", "COUNTER_RATE=0", "COUNTER_COUNT=200", "FLOWCTL_STATE_DIR=" + filepath.Join(dir, "state")}
	sinkEnv := []string{"FLOWCTL_COMPONENT_ID=file", "FILE_SINK_PATH=" + out}

	sink := run(t, filepath.Join(bin, "file-sink"), sinkEnv...)
	processor := run(t, filepath.Join(bin, "transform-processor"), "FLOWCTL_COMPONENT_ID=upper", "TRANSFORM_UPPER=source")
	counter := run(t, filepath.Join(bin, "counter-source"), counterEnv...)

	// A first pass moves 80 events and commits the position the sink
	// acknowledged to the source.
	m := relay(t, counter, processor, sink, &flowctlv1.StreamRequest{}, 80)
	if m.first != "counter-1" || m.last != "counter-80" || m.acked != 80 {
		t.Fatalf("first pass: %+v", m)
	}
	c := dialData(t, counter.addr)
	_, err := flowctlv1.NewSourceServiceClient(c).SaveState(context.Background(), &flowctlv1.SaveStateRequest{
		State: map[string]string{component.ResumeTokenKey: m.lastToken},
	})
	_ = c.Close()
	if err != nil {
		t.Fatal(err)
	}

	// The source restarts and resumes after the committed position.
	counter.stop(t)
	counter = run(t, filepath.Join(bin, "counter-source"), counterEnv...)
	m = relay(t, counter, processor, sink, &flowctlv1.StreamRequest{Resume: true}, 0)
	if m.first != "counter-81" || m.last != "counter-200" || m.acked != 120 {
		t.Fatalf("resumed pass: %+v", m)
	}

	// The sink restarts and everything is replayed: nothing is doubled.
	sink.stop(t)
	sink = run(t, filepath.Join(bin, "file-sink"), sinkEnv...)
	if m = relay(t, counter, processor, sink, &flowctlv1.StreamRequest{}, 0); m.acked != 200 {
		t.Fatalf("replay: %+v", m)
	}
	for _, p := range []*proc{counter, processor, sink} {
		p.stop(t)
	}

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		var l struct {
			ID      string `json:"id"`
			Payload struct {
				Seq         int    `json:"seq"`
				Source      string `json:"source"`
				ProcessedBy string `json:"processed_by"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d: %v: %s", n, err, sc.Text())
		}
		if want := fmt.Sprintf("counter-%d", n); l.ID != want || l.Payload.Seq != n || l.Payload.Source != "COUNTER" || l.Payload.ProcessedBy != "upper" {
			t.Fatalf("line %d is %s, want %s from the counter through the processor", n, sc.Text(), want)
		}
	}
	if n != 200 {
		t.Fatalf("%s holds %d events, want 200", out, n)
	}
}

func TestExampleComponentsRefuseCallersWithoutTheRelaysToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example components")
	}
	bin := build(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out", "events.ndjson")
	sink := run(t, filepath.Join(bin, "file-sink"), "FLOWCTL_COMPONENT_ID=file", "FILE_SINK_PATH="+out)
	counter := run(t, filepath.Join(bin, "counter-source"), "FLOWCTL_COMPONENT_ID=counter", "COUNTER_RATE=0", "COUNTER_COUNT=50",
		"FLOWCTL_STATE_DIR="+filepath.Join(dir, "state"))

	other, err := tokens.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := tokens.NewDataIssuer(other, "").Issue(contract.DataPlaneRelaySubject)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := tokens.NewDataIssuer(dataKey(), "").Issue("sink.file")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, tok := range map[string]string{"no token": "", "another key's token": forged} {
		var opts []grpc.DialOption
		if tok != "" {
			opts = append(opts, component.WithDataToken(tok))
		}
		dial := func(addr string) *grpc.ClientConn {
			c, err := component.Dial(addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
		events, err := flowctlv1.NewSourceServiceClient(dial(counter.addr)).StreamEvents(ctx, &flowctlv1.StreamRequest{ResumeToken: "5"})
		if err == nil {
			_, err = events.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: StreamEvents: %v; want Unauthenticated", name, err)
		}
		consume, err := flowctlv1.NewConsumerServiceClient(dial(sink.addr)).Consume(ctx)
		if err == nil {
			_ = consume.Send(&component.Event{Id: "rt-forged-1", Type: "tick", SourceComponentId: "attacker", Payload: []byte(`{}`)})
			_, err = consume.CloseAndRecv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: Consume: %v; want Unauthenticated", name, err)
		}
	}
	_, err = flowctlv1.NewSourceServiceClient(dialData(t, counter.addr)).SaveState(ctx, &flowctlv1.SaveStateRequest{
		State: map[string]string{component.ResumeTokenKey: "45"},
	})
	if err != nil {
		t.Fatalf("SaveState by the relay: %v", err)
	}
	c, err := component.Dial(counter.addr, component.WithDataToken(peer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = flowctlv1.NewSourceServiceClient(c).SaveState(ctx, &flowctlv1.SaveStateRequest{
		State: map[string]string{component.ResumeTokenKey: "49"},
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SaveState with a component's data token: %v; want PermissionDenied", err)
	}
	// The position is still the relay's: a resumed stream starts at 46.
	m := relay(t, counter, run(t, filepath.Join(bin, "transform-processor"), "FLOWCTL_COMPONENT_ID=upper"), sink, &flowctlv1.StreamRequest{Resume: true}, 0)
	if m.first != "counter-46" || m.last != "counter-50" {
		t.Fatalf("resumed pass: %+v", m)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "rt-forged-1") || strings.Contains(string(b), "attacker") {
		t.Fatalf("the forged event reached the sink's file:\n%s", b)
	}
}
