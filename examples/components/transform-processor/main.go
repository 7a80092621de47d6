// Command transform-processor is an example flowctl processor built on
// pkg/component: it rewrites fields of JSON event payloads.
//
// For each event whose payload is a JSON object it upper-cases the string
// fields named in TRANSFORM_UPPER, then sets the fields of TRANSFORM_SET
// (as strings), and re-encodes the object (keys sorted). Other payloads
// pass through unchanged. The event keeps its id, so a sink that
// de-duplicates by id still sees a replayed event as the same one.
//
// Environment, besides what pkg/component reads (FLOWCTL_COMPONENT_ID,
// PORT, HEALTH_PORT, ENABLE_FLOWCTL, FLOWCTL_ENDPOINT,
// FLOWCTL_COMPONENT_TOKEN, FLOWCTL_HEARTBEAT_INTERVAL,
// FLOWCTL_DATA_PLANE_KEY, FLOWCTL_BIND_ADDRESS; run by hand, without
// flowctl, it needs FLOWCTL_DATA_PLANE_INSECURE=true, see
// docs/data-plane-auth.md):
//
//	TRANSFORM_UPPER       comma-separated fields to upper-case (default: none)
//	TRANSFORM_SET         comma-separated name=value fields to set
//	                      (default "processed_by=<component id>"; set it empty to add nothing)
//	TRANSFORM_EVENT_TYPE  the type of the events it outputs (default: the input's)
//	LOG_LEVEL             debug, info (default), warn or error
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/flowctl/flowctl/pkg/component"
)

// transform is the processor's configuration.
type transform struct {
	upper     []string
	set       [][2]string
	eventType string
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	if err := run(log); err != nil {
		log.Error("transform-processor", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg := component.FromEnv()
	t, err := fromEnv(cfg.ID)
	if err != nil {
		return err
	}
	c, err := component.New(cfg, component.Info{
		Name: "transform-processor", Description: "rewrites fields of JSON events", Version: "1",
	}, component.WithProcessor(t), component.WithLogger(log))
	if err != nil {
		return err
	}
	log.Info("transform-processor", "upper", t.upper, "set", t.set, "event_type", t.eventType)
	return c.Run(context.Background())
}

func fromEnv(id string) (*transform, error) {
	if id == "" {
		id = "transform-processor"
	}
	t := &transform{eventType: os.Getenv("TRANSFORM_EVENT_TYPE")}
	for _, f := range strings.Split(os.Getenv("TRANSFORM_UPPER"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			t.upper = append(t.upper, f)
		}
	}
	set, ok := os.LookupEnv("TRANSFORM_SET")
	if !ok {
		set = "processed_by=" + id
	}
	for _, kv := range strings.Split(set, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("TRANSFORM_SET: %q is not name=value", kv)
		}
		t.set = append(t.set, [2]string{strings.TrimSpace(k), v})
	}
	return t, nil
}

// Process rewrites ev in place and passes it on.
func (t *transform) Process(_ context.Context, ev *component.Event) ([]*component.Event, error) {
	if t.eventType != "" {
		ev.Type = t.eventType
	}
	dec := json.NewDecoder(bytes.NewReader(ev.GetPayload()))
	dec.UseNumber() // keep numbers exactly as they came
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil || dec.More() {
		return []*component.Event{ev}, nil // not a JSON object: pass it through
	}
	for _, f := range t.upper {
		if s, ok := obj[f].(string); ok {
			obj[f] = strings.ToUpper(s)
		}
	}
	for _, kv := range t.set {
		obj[kv[0]] = kv[1]
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	ev.Payload = body
	return []*component.Event{ev}, nil
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
