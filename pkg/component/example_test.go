package component_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/pkg/component"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// A source, a processor and a sink, each a component serving its data
// plane on a loopback port, and the few lines that move events between
// them (in a pipeline, flowctl does that part).
func Example() {
	ctx := context.Background()

	words := []string{"hello", "data", "plane"}
	source := component.SourceFunc(func(ctx context.Context, req component.StreamRequest, emit component.Emit) error {
		for i, w := range words {
			ev := &component.Event{Id: fmt.Sprintf("words-%d", i+1), Type: "word", Payload: []byte(w)}
			if err := emit(ev, fmt.Sprint(i+1)); err != nil {
				return err
			}
		}
		return nil // the stream ends
	})
	upper := component.ProcessorFunc(func(_ context.Context, ev *component.Event) ([]*component.Event, error) {
		ev.Payload = []byte(strings.ToUpper(string(ev.Payload)))
		return []*component.Event{ev}, nil
	})
	printer := component.SinkFunc(func(_ context.Context, ev *component.Event) error {
		fmt.Printf("%s %s (resume token %s)\n", ev.Id, ev.Payload, ev.Metadata[component.ResumeTokenKey])
		return nil
	})

	// Config{} listens on an ephemeral loopback port and registers nowhere;
	// FromEnv() is what a real component uses. Outside flowctl there is no
	// data-plane key to verify callers with: the example accepts any.
	start := func(name string, handler component.Option) *component.Component {
		c, err := component.New(component.Config{ID: name}, component.Info{Name: name}, handler, component.WithInsecureDataPlane())
		if err != nil {
			log.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			log.Fatal(err)
		}
		return c
	}
	src := start("words", component.WithSource(source))
	proc := start("upper", component.WithProcessor(upper))
	sink := start("printer", component.WithSink(printer))
	for _, c := range []*component.Component{src, proc, sink} {
		defer c.Close(ctx)
	}

	var conns []*grpc.ClientConn
	connect := func(c *component.Component) *grpc.ClientConn {
		conn, err := component.Dial(c.DataAddr())
		if err != nil {
			log.Fatal(err)
		}
		conns = append(conns, conn)
		return conn
	}
	defer func() {
		for _, conn := range conns {
			_ = conn.Close()
		}
	}()
	events, err := flowctlv1.NewSourceServiceClient(connect(src)).StreamEvents(ctx, &flowctlv1.StreamRequest{})
	if err != nil {
		log.Fatal(err)
	}
	processing, err := flowctlv1.NewProcessorServiceClient(connect(proc)).Process(ctx)
	if err != nil {
		log.Fatal(err)
	}
	consuming, err := flowctlv1.NewConsumerServiceClient(connect(sink)).Consume(ctx)
	if err != nil {
		log.Fatal(err)
	}
	go func() { // source → processor
		for {
			ev, err := events.Recv()
			if err != nil {
				_ = processing.CloseSend()
				return
			}
			if err := processing.Send(ev); err != nil {
				return
			}
		}
	}()
	for { // processor → sink
		ev, err := processing.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if err := consuming.Send(ev); err != nil {
			log.Fatal(err)
		}
	}
	resp, err := consuming.CloseAndRecv()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("consumed:", resp.EventsConsumed)
	// Output:
	// words-1 HELLO (resume token 1)
	// words-2 DATA (resume token 2)
	// words-3 PLANE (resume token 3)
	// consumed: 3
}
