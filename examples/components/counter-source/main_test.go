package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/component"
)

func TestCounterResumesAfterItsPositionAndStopsAtCount(t *testing.T) {
	c := &counter{id: "ctr", count: 8, eventType: "counter.tick", pad: "xx"}
	var got []string
	err := c.Stream(context.Background(), component.StreamRequest{After: "5"}, func(ev *component.Event, pos string) error {
		var p payload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return err
		}
		got = append(got, fmt.Sprintf("%s@%s seq=%d source=%s pad=%s %s", ev.Id, pos, p.Seq, p.Source, p.Pad, ev.ContentType))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ctr-6@6 seq=6 source=ctr pad=xx application/json",
		"ctr-7@7 seq=7 source=ctr pad=xx application/json",
		"ctr-8@8 seq=8 source=ctr pad=xx application/json",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestCounterRefusesAForeignResumeToken(t *testing.T) {
	c := &counter{id: "ctr", count: 3}
	err := c.Stream(context.Background(), component.StreamRequest{After: "ledger-9"}, func(*component.Event, string) error { return nil })
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
}

func TestCounterConfigFromEnv(t *testing.T) {
	t.Setenv("COUNTER_RATE", "0")
	t.Setenv("COUNTER_COUNT", "10000")
	t.Setenv("COUNTER_PAD_BYTES", "4")
	c, err := fromEnv("")
	if err != nil {
		t.Fatal(err)
	}
	if c.id != "counter-source" || c.rate != 0 || c.count != 10000 || c.pad != "xxxx" || c.eventType != "counter.tick" {
		t.Fatalf("%+v", c)
	}
	t.Setenv("COUNTER_RATE", "fast")
	if _, err := fromEnv("x"); err == nil {
		t.Fatal("COUNTER_RATE=fast accepted")
	}
}
