package component

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/pkg/contract"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// Event is the unit of data that moves through a pipeline.
type Event = flowctlv1.Event

// ResumeTokenKey names a source's position in two places: in the metadata
// of every event a source emits (that event's position: a StreamEvents
// call with resume_token set to it resumes right after the event), and in
// the state map of SaveState/GetState (the position a consumer committed:
// StreamEvents with resume=true and no resume_token resumes right after
// it).
const ResumeTokenKey = contract.ResumeTokenKey

// Flow-control windows of the SDK's data-plane servers and of Dial. They
// are static (no window growth), so a stream that is not read holds at
// most about DataStreamWindow bytes in flight on each hop, whatever the
// rate at which its writer produces.
const (
	DataStreamWindow = 256 << 10
	DataConnWindow   = 1 << 20
)

// maxConsumeErrors bounds the error texts one ConsumeResponse carries.
const maxConsumeErrors = 16

// StreamRequest is a StreamEvents call as an EventSource sees it.
type StreamRequest struct {
	// After is the position to resume after; "" starts from the beginning.
	// The SDK resolves it from the call: its resume_token when set, else,
	// when resume is true, the resume token saved in the component's
	// Store (SaveState), else "".
	After string
	// Params is the call's params map, as sent.
	Params map[string]string
}

// Emit sends one event down a StreamEvents stream, recording position in
// its metadata under ResumeTokenKey. It blocks while the stream's reader
// is behind (gRPC flow control), and fails once the stream is done.
type Emit func(ev *Event, position string) error

// An EventSource produces events: the handler of a source component.
type EventSource interface {
	// Stream emits events in order, starting right after req.After, until
	// ctx ends (the caller went away or the component is closing) or there
	// is nothing more to emit (return nil: the caller sees the stream end).
	// A position must let the source resume right after its event. Stream
	// may run several times at once, one per StreamEvents call.
	Stream(ctx context.Context, req StreamRequest, emit Emit) error
}

// SourceFunc adapts a function to EventSource.
type SourceFunc func(ctx context.Context, req StreamRequest, emit Emit) error

// Stream calls f.
func (f SourceFunc) Stream(ctx context.Context, req StreamRequest, emit Emit) error {
	return f(ctx, req, emit)
}

// An EventProcessor turns each event of a Process stream into zero or
// more events: the handler of a processor component.
type EventProcessor interface {
	// Process returns the events ev becomes: none drops it. An error ends
	// the stream (the caller sees it and may retry): return no events, not
	// an error, to skip an event that can never be processed. Output events
	// inherit from ev what they leave empty: the id (ev's, suffixed
	// "-<index>" when there are several outputs), the source component id,
	// the timestamp and the resume token. Process may run concurrently, once
	// per stream.
	Process(ctx context.Context, ev *Event) ([]*Event, error)
}

// ProcessorFunc adapts a function to EventProcessor.
type ProcessorFunc func(ctx context.Context, ev *Event) ([]*Event, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, ev *Event) ([]*Event, error) { return f(ctx, ev) }

// An EventSink consumes events: the handler of a sink component.
type EventSink interface {
	// Consume takes one event. An error counts the event as failed (in
	// ConsumeResponse.events_failed and errors) and the stream goes on. The
	// SDK calls Consume (and Flush) from one goroutine at a time, even when
	// several Consume streams are open.
	Consume(ctx context.Context, ev *Event) error
}

// SinkFunc adapts a function to EventSink.
type SinkFunc func(ctx context.Context, ev *Event) error

// Consume calls f.
func (f SinkFunc) Consume(ctx context.Context, ev *Event) error { return f(ctx, ev) }

// A Flusher is an EventSink that buffers. The SDK calls Flush when a Consume
// stream ends, before it answers: a ConsumeResponse acknowledges events
// that are durable.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Stats counts a component's data-plane events since it started.
type Stats struct {
	// EventsIn: events received (processors, sinks: consumed without error).
	EventsIn int64
	// EventsOut: events sent (sources, processors).
	EventsOut int64
	// EventsFailed: events a processor or sink failed on.
	EventsFailed int64
}

// Dial connects to a component's data endpoint (host:port) without TLS,
// with the flow-control windows of the SDK's servers, so that a stream
// holds a bounded number of bytes in flight, and their codec (codec.go:
// events encoded by hand, the bytes protobuf's). opts come after the SDK's
// and win. Use the generated clients on the connection:
// flowctlv1.NewSourceServiceClient and the like.
func Dial(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStaticStreamWindowSize(DataStreamWindow),
		grpc.WithStaticConnWindowSize(DataConnWindow),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(eventCodec{})),
	}
	conn, err := grpc.NewClient(addr, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("component: dial %s: %w", addr, err)
	}
	return conn, nil
}

// newDataServer builds the gRPC server of c's kind, or returns nil when c
// serves no data plane.
func (c *Component) newDataServer() *grpc.Server {
	if c.source == nil && c.processor == nil && c.sink == nil {
		return nil
	}
	// Buffers of 128 KiB let one system call carry many events.
	opts := []grpc.ServerOption{
		grpc.StaticStreamWindowSize(DataStreamWindow),
		grpc.StaticConnWindowSize(DataConnWindow),
		grpc.ForceServerCodecV2(eventCodec{}),
		grpc.WriteBufferSize(128 << 10),
		grpc.ReadBufferSize(128 << 10),
		// Close stops the server and must wait for sinks to flush.
		grpc.WaitForHandlers(true),
	}
	if c.verifier != nil {
		opts = append(opts, c.verifier.ServerOptions()...)
	}
	s := grpc.NewServer(opts...)
	switch {
	case c.source != nil:
		flowctlv1.RegisterSourceServiceServer(s, sourceServer{c: c})
	case c.processor != nil:
		flowctlv1.RegisterProcessorServiceServer(s, processorServer{c: c})
	default:
		flowctlv1.RegisterConsumerServiceServer(s, sinkServer{c: c})
	}
	return s
}

func (c *Component) componentInfo() *flowctlv1.ComponentInfo {
	return &flowctlv1.ComponentInfo{
		Id: c.cfg.ID, Name: c.info.Name, Description: c.info.Description, Version: c.info.Version,
		Type: c.info.Type, InputEventTypes: c.info.InputEventTypes, OutputEventTypes: c.info.OutputEventTypes,
		Endpoint: c.endpoint(), Metadata: c.info.Metadata,
	}
}

func (c *Component) healthCheck() *flowctlv1.HealthCheckResponse {
	c.mu.Lock()
	ok := c.healthy
	metrics := make(map[string]string, len(c.metrics)+3)
	for k, v := range c.metrics {
		metrics[k] = v
	}
	c.mu.Unlock()
	c.statMetrics(metrics)
	if !ok {
		return &flowctlv1.HealthCheckResponse{Status: flowctlv1.HealthStatus_HEALTH_STATUS_STARTING, Metrics: metrics, Message: "not ready"}
	}
	return &flowctlv1.HealthCheckResponse{Status: flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY, Metrics: metrics, Message: "ok"}
}

// Stats returns the data-plane counters.
func (c *Component) Stats() Stats {
	return Stats{EventsIn: c.eventsIn.Load(), EventsOut: c.eventsOut.Load(), EventsFailed: c.eventsFailed.Load()}
}

// statMetrics adds the data-plane counters to m, when c has a data plane.
func (c *Component) statMetrics(m map[string]string) {
	if c.source == nil && c.processor == nil && c.sink == nil {
		return
	}
	st := c.Stats()
	m["events_in"] = strconv.FormatInt(st.EventsIn, 10)
	m["events_out"] = strconv.FormatInt(st.EventsOut, 10)
	m["events_failed"] = strconv.FormatInt(st.EventsFailed, 10)
}

// rpcError turns a handler's error into a gRPC status: statuses pass as
// they are, context errors become Canceled or DeadlineExceeded.
func rpcError(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.Error(status.FromContextError(err).Code(), what+": "+err.Error())
	}
	return status.Error(codes.Unknown, what+": "+err.Error())
}

type sourceServer struct {
	flowctlv1.UnimplementedSourceServiceServer
	c *Component
}

func (s sourceServer) GetInfo(context.Context, *emptypb.Empty) (*flowctlv1.ComponentInfo, error) {
	return s.c.componentInfo(), nil
}

func (s sourceServer) HealthCheck(context.Context, *flowctlv1.HealthCheckRequest) (*flowctlv1.HealthCheckResponse, error) {
	return s.c.healthCheck(), nil
}

func (s sourceServer) StreamEvents(req *flowctlv1.StreamRequest, stream grpc.ServerStreamingServer[Event]) error {
	c := s.c
	after := req.GetResumeToken()
	if after == "" && req.GetResume() {
		st, err := c.Store()
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		after = st.Get("").ResumeToken
	}
	ctx := stream.Context()
	c.log.Debug("stream events", "after", after, "resume", req.GetResume())
	emit := func(ev *Event, position string) error {
		if ev.Metadata == nil {
			ev.Metadata = make(map[string]string, 1)
		}
		if position != "" {
			ev.Metadata[ResumeTokenKey] = position
		}
		if ev.SourceComponentId == "" {
			ev.SourceComponentId = c.cfg.ID
		}
		if ev.Timestamp == nil {
			ev.Timestamp = timestamppb.Now()
		}
		if err := stream.Send(ev); err != nil {
			return fmt.Errorf("send event %s: %w", ev.GetId(), err)
		}
		c.eventsOut.Add(1)
		return nil
	}
	err := c.source.Stream(ctx, StreamRequest{After: after, Params: req.GetParams()}, emit)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("source stream ended", "err", err)
	}
	return rpcError("stream events", err)
}

func (s sourceServer) GetState(_ context.Context, req *flowctlv1.StateRequest) (*flowctlv1.StateResponse, error) {
	st, err := s.c.Store()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	got := st.Get(req.GetKey())
	resp := &flowctlv1.StateResponse{State: got.Values, ResumeToken: got.ResumeToken}
	if !got.Updated.IsZero() {
		resp.LastUpdatedUnix = got.Updated.Unix()
	}
	return resp, nil
}

func (s sourceServer) SaveState(_ context.Context, req *flowctlv1.SaveStateRequest) (*emptypb.Empty, error) {
	st, err := s.c.Store()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := st.Save(req.GetKey(), req.GetState()); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &emptypb.Empty{}, nil
}

type processorServer struct {
	flowctlv1.UnimplementedProcessorServiceServer
	c *Component
}

func (p processorServer) GetInfo(context.Context, *emptypb.Empty) (*flowctlv1.ComponentInfo, error) {
	return p.c.componentInfo(), nil
}

func (p processorServer) HealthCheck(context.Context, *flowctlv1.HealthCheckRequest) (*flowctlv1.HealthCheckResponse, error) {
	return p.c.healthCheck(), nil
}

// Process handles one event at a time: it receives the next only once the
// outputs of the last are sent, so a slow reader of the outputs holds back
// the writer of the inputs (flow control on both hops) and nothing queues
// here.
func (p processorServer) Process(stream grpc.BidiStreamingServer[Event, Event]) error {
	c := p.c
	ctx := stream.Context()
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return rpcError("receive", err)
		}
		c.eventsIn.Add(1)
		outs, err := c.processor.Process(ctx, in)
		if err != nil {
			c.eventsFailed.Add(1)
			c.log.Warn("process", "event", in.GetId(), "err", err)
			return rpcError("process event "+in.GetId(), err)
		}
		n := 0
		for _, out := range outs {
			if out != nil {
				n++
			}
		}
		i := 0
		for _, out := range outs {
			if out == nil {
				continue
			}
			inherit(out, in, i, n)
			i++
			if err := stream.Send(out); err != nil {
				return rpcError("send event "+out.GetId(), err)
			}
			c.eventsOut.Add(1)
		}
	}
}

// inherit fills what out leaves empty from in, the event it came from
// (the i-th of n outputs).
func inherit(out, in *Event, i, n int) {
	if out.Id == "" {
		out.Id = in.GetId()
		if n > 1 {
			out.Id += "-" + strconv.Itoa(i)
		}
	}
	if out.SourceComponentId == "" {
		out.SourceComponentId = in.GetSourceComponentId()
	}
	if out.Timestamp == nil {
		out.Timestamp = in.GetTimestamp()
	}
	if tok, ok := in.GetMetadata()[ResumeTokenKey]; ok {
		if _, set := out.GetMetadata()[ResumeTokenKey]; !set {
			if out.Metadata == nil {
				out.Metadata = make(map[string]string, 1)
			}
			out.Metadata[ResumeTokenKey] = tok
		}
	}
}

type sinkServer struct {
	flowctlv1.UnimplementedConsumerServiceServer
	c *Component
}

func (s sinkServer) GetInfo(context.Context, *emptypb.Empty) (*flowctlv1.ComponentInfo, error) {
	return s.c.componentInfo(), nil
}

func (s sinkServer) HealthCheck(context.Context, *flowctlv1.HealthCheckRequest) (*flowctlv1.HealthCheckResponse, error) {
	return s.c.healthCheck(), nil
}

// Consume feeds the stream to the sink; when the stream ends it flushes the
// sink and only then answers, so the answer acknowledges durable events. A
// stream that breaks (the caller went away, the component is closing) is
// flushed too, and answers an error: the caller must assume none of its
// events were acknowledged.
func (s sinkServer) Consume(stream grpc.ClientStreamingServer[Event, flowctlv1.ConsumeResponse]) error {
	c := s.c
	ctx := stream.Context()
	resp := &flowctlv1.ConsumeResponse{}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ferr := c.flushSink(context.WithoutCancel(ctx)); ferr != nil {
				c.log.Warn("flush sink", "err", ferr)
			}
			return rpcError("receive", err)
		}
		c.sinkMu.Lock()
		err = c.sink.Consume(ctx, ev)
		c.sinkMu.Unlock()
		if err != nil {
			c.eventsFailed.Add(1)
			resp.EventsFailed++
			if len(resp.Errors) < maxConsumeErrors {
				resp.Errors = append(resp.Errors, fmt.Sprintf("event %s: %v", ev.GetId(), err))
			}
			c.log.Warn("consume", "event", ev.GetId(), "err", err)
			continue
		}
		c.eventsIn.Add(1)
		resp.EventsConsumed++
	}
	if err := c.flushSink(ctx); err != nil {
		return status.Error(codes.Internal, "flush sink: "+err.Error())
	}
	return stream.SendAndClose(resp)
}

func (c *Component) flushSink(ctx context.Context) error {
	f, ok := c.sink.(Flusher)
	if !ok {
		return nil
	}
	c.sinkMu.Lock()
	defer c.sinkMu.Unlock()
	return f.Flush(ctx)
}
