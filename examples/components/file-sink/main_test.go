package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/pkg/component"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// serve runs s as a sink component on a loopback port until the test, or
// the returned stop, ends it.
func serve(t *testing.T, s *sink) (addr string, stop func()) {
	t.Helper()
	c, err := component.New(component.Config{ID: "file"}, component.Info{Name: "file-sink"}, component.WithSink(s), component.WithInsecureDataPlane())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		if err := c.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
	return c.DataAddr(), stop
}

// consume sends events ids from..to to the sink in one Consume stream.
func consume(t *testing.T, addr string, from, to int) *flowctlv1.ConsumeResponse {
	t.Helper()
	conn, err := component.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := flowctlv1.NewConsumerServiceClient(conn).Consume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i <= to; i++ {
		ev := &component.Event{Id: fmt.Sprintf("c-%d", i), Type: "tick", Payload: fmt.Appendf(nil, `{"seq":%d}`, i), ContentType: "application/json"}
		if err := stream.Send(ev); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// idsOnFile reads the file's lines, each of which must be a JSON event.
func idsOnFile(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d is not JSON: %q", len(ids)+1, sc.Text())
		}
		ids = append(ids, l.ID)
	}
	return ids
}

func seq(from, to int) string {
	var ids []string
	for i := from; i <= to; i++ {
		ids = append(ids, fmt.Sprintf("c-%d", i))
	}
	return strings.Join(ids, " ")
}

func TestReplayedEventsAreWrittenOnceAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "events.ndjson")
	s, err := openSink(path)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serve(t, s)
	consume(t, addr, 1, 5)
	// A relay that lost track replays 3..5 with what follows.
	if resp := consume(t, addr, 3, 7); resp.EventsConsumed != 5 {
		t.Fatalf("replay: %v (a duplicate is consumed, not failed)", resp)
	}
	stop()
	if got := strings.Join(idsOnFile(t, path), " "); got != seq(1, 7) {
		t.Fatalf("file holds %s, want %s", got, seq(1, 7))
	}

	// Restarted, the sink knows what the file holds.
	s, err = openSink(path)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop = serve(t, s)
	consume(t, addr, 1, 9)
	stop()
	if got := strings.Join(idsOnFile(t, path), " "); got != seq(1, 9) {
		t.Fatalf("after restart and replay, file holds %s, want %s", got, seq(1, 9))
	}
	var l line
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &l); err != nil || string(l.Payload) != `{"seq":1}` || l.Type != "tick" {
		t.Fatalf("first line %+v (%v): the JSON payload should be inline", l, err)
	}
}

func TestATornLastLineIsCutOffAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	torn := `{"id":"c-1"}` + "\n" + `{"id":"c-2"}` + "\n" + `{"id":"c-3","ty`
	if err := os.WriteFile(path, []byte(torn), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := openSink(path)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serve(t, s)
	consume(t, addr, 2, 3)
	stop()
	if got := strings.Join(idsOnFile(t, path), " "); got != seq(1, 3) {
		t.Fatalf("file holds %s, want %s", got, seq(1, 3))
	}
}

func TestNonJSONPayloadsAreKeptAsBase64(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	s, err := openSink(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(context.Background(), &component.Event{Id: "b", Payload: []byte("not json\n")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"b","payload_base64":"bm90IGpzb24K"}` + "\n"; string(b) != want {
		t.Fatalf("file %q, want %q", b, want)
	}
}
