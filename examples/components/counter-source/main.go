// Command counter-source is an example flowctl source built on
// pkg/component: it emits sequence-numbered JSON events, at a set rate, up
// to a set count, and resumes after a position.
//
// Each event has the id "<source id>-<seq>" (seq counts from 1), the type
// COUNTER_EVENT_TYPE, content type application/json and the payload
//
//	{"seq": 7, "source": "<source id>", "pad": "xxxx…"}
//
// Its position (resume token) is seq in decimal. A StreamEvents call with
// resume_token N starts at N+1; with resume=true and no token, after the
// position last saved with SaveState (which the SDK keeps in its state
// file, so it survives a restart); otherwise at 1. Each call emits until
// COUNTER_COUNT (then the stream ends) or until the caller goes away.
//
// Environment, besides what pkg/component reads (FLOWCTL_COMPONENT_ID,
// PORT, HEALTH_PORT, ENABLE_FLOWCTL, FLOWCTL_ENDPOINT,
// FLOWCTL_COMPONENT_TOKEN, FLOWCTL_HEARTBEAT_INTERVAL, FLOWCTL_STATE_DIR,
// FLOWCTL_DATA_PLANE_KEY, FLOWCTL_BIND_ADDRESS; run by hand, without
// flowctl, it needs FLOWCTL_DATA_PLANE_INSECURE=true, see
// docs/data-plane-auth.md):
//
//	COUNTER_RATE        events per second per stream (default 10; 0: as fast as the reader takes them)
//	COUNTER_COUNT       last sequence number (default 0: no end)
//	COUNTER_EVENT_TYPE  event type (default "counter.tick")
//	COUNTER_PAD_BYTES   length of a "pad" string added to the payload, to size events (default 0: none)
//	LOG_LEVEL           debug, info (default), warn or error
//
// The source id is FLOWCTL_COMPONENT_ID, or "counter-source" when unset.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/component"
)

// counter is the source's configuration.
type counter struct {
	id        string
	rate      float64
	count     uint64
	eventType string
	pad       string
}

// payload is an event's JSON body.
type payload struct {
	Seq    uint64 `json:"seq"`
	Source string `json:"source"`
	Pad    string `json:"pad,omitempty"`
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	if err := run(log); err != nil {
		log.Error("counter-source", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg := component.FromEnv()
	src, err := fromEnv(cfg.ID)
	if err != nil {
		return err
	}
	c, err := component.New(cfg, component.Info{
		Name: "counter-source", Description: "emits sequence-numbered JSON events", Version: "1",
		OutputEventTypes: []string{src.eventType},
	}, component.WithSource(src), component.WithLogger(log))
	if err != nil {
		return err
	}
	log.Info("counter-source", "id", src.id, "rate", src.rate, "count", src.count)
	return c.Run(context.Background())
}

func fromEnv(id string) (*counter, error) {
	if id == "" {
		id = "counter-source"
	}
	c := &counter{id: id, rate: 10, eventType: "counter.tick"}
	if v := os.Getenv("COUNTER_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 {
			return nil, fmt.Errorf("COUNTER_RATE=%q: want a number of events per second, 0 or more", v)
		}
		c.rate = r
	}
	if v := os.Getenv("COUNTER_COUNT"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("COUNTER_COUNT=%q: want a whole number, 0 or more", v)
		}
		c.count = n
	}
	if v := os.Getenv("COUNTER_EVENT_TYPE"); v != "" {
		c.eventType = v
	}
	if v := os.Getenv("COUNTER_PAD_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 4<<20 {
			return nil, fmt.Errorf("COUNTER_PAD_BYTES=%q: want a byte count from 0 to 4194304", v)
		}
		c.pad = strings.Repeat("x", n)
	}
	return c, nil
}

// Stream emits seq After+1, After+2, … paced at c.rate.
func (c *counter) Stream(ctx context.Context, req component.StreamRequest, emit component.Emit) error {
	var last uint64
	if req.After != "" {
		n, err := strconv.ParseUint(req.After, 10, 64)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "resume token %q: not a sequence number", req.After)
		}
		last = n
	}
	var interval time.Duration
	if c.rate > 0 {
		interval = time.Duration(float64(time.Second) / c.rate)
	}
	// Pace against a start time rather than sleeping a fixed interval
	// per event, so the rate holds however long a send takes.
	start := time.Now()
	timer := time.NewTimer(0) // Reset drops a pending tick (Go 1.23 timers)
	defer timer.Stop()
	for i := uint64(1); ; i++ {
		seq := last + i
		if c.count > 0 && seq > c.count {
			return nil
		}
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(i-1) * interval)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-timer.C:
				}
			}
		}
		body, err := json.Marshal(payload{Seq: seq, Source: c.id, Pad: c.pad})
		if err != nil {
			return fmt.Errorf("encode event %d: %w", seq, err)
		}
		ev := &component.Event{
			Id:          c.id + "-" + strconv.FormatUint(seq, 10),
			Type:        c.eventType,
			Payload:     body,
			ContentType: "application/json",
		}
		if err := emit(ev, strconv.FormatUint(seq, 10)); err != nil {
			return err
		}
	}
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
