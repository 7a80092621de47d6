package main

import (
	"context"
	"testing"

	"github.com/flowctl/flowctl/pkg/component"
)

func TestTransformRewritesJSONObjectsAndPassesTheRest(t *testing.T) {
	t.Setenv("TRANSFORM_UPPER", "source, missing")
	t.Setenv("TRANSFORM_SET", "stage=transformed")
	t.Setenv("TRANSFORM_EVENT_TYPE", "")
	tr, err := fromEnv("proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"seq":12345678901234567890,"source":"ctr"}`, `{"seq":12345678901234567890,"source":"CTR","stage":"transformed"}`},
		{`{"source":7}`, `{"source":7,"stage":"transformed"}`},
		{`[1,2]`, `[1,2]`},
		{`plain text`, `plain text`},
		{`{"a":1} {"b":2}`, `{"a":1} {"b":2}`},
	} {
		out, err := tr.Process(context.Background(), &component.Event{Id: "e", Payload: []byte(tc.in)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || string(out[0].Payload) != tc.want || out[0].Id != "e" {
			t.Errorf("%s → %v, want %s", tc.in, out, tc.want)
		}
	}
}

func TestTransformDefaultsToTaggingTheProcessor(t *testing.T) {
	tr, err := fromEnv("proc")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := tr.Process(context.Background(), &component.Event{Payload: []byte(`{"seq":1}`)})
	if got := string(out[0].Payload); got != `{"processed_by":"proc","seq":1}` {
		t.Fatalf("got %s", got)
	}
	t.Setenv("TRANSFORM_SET", "novalue")
	if _, err := fromEnv("proc"); err == nil {
		t.Fatal("TRANSFORM_SET=novalue accepted")
	}
}
