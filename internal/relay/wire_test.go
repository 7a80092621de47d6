package relay

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// TestScanEventReadsWhatProtobufDecodes: the relay's reading of an encoded
// event agrees with protobuf's decoding of it, and an event it gives a
// source id decodes with that id and nothing else changed.
func TestScanEventReadsWhatProtobufDecodes(t *testing.T) {
	events := []*flowctlv1.Event{
		{},
		{Id: "c-1", Payload: []byte("x"), Metadata: map[string]string{resumeTokenKey: "1"}, SourceComponentId: "c"},
		{Id: "c-2", Metadata: map[string]string{"a": "b", resumeTokenKey: "2", "z": ""}, Timestamp: timestamppb.Now(),
			ContentType: "application/json", StellarCursor: &flowctlv1.StellarCursor{LedgerSequence: 7}},
		{Id: "no-position", Metadata: map[string]string{"other": "1"}},
	}
	for i, ev := range events {
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := scanEvent(b)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if string(got.source) != ev.SourceComponentId || string(got.position) != ev.Metadata[resumeTokenKey] {
			t.Fatalf("event %d: read source %q position %q, want %q %q", i, got.source, got.position, ev.SourceComponentId, ev.Metadata[resumeTokenKey])
		}
		var back flowctlv1.Event
		if err := proto.Unmarshal(withSource(b, "src"), &back); err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(ev).(*flowctlv1.Event)
		want.SourceComponentId = "src"
		if !proto.Equal(&back, want) {
			t.Fatalf("event %d with a source id: %v, want %v", i, &back, want)
		}
	}
	// As in decoding, the last of a repeated field wins, and a field the
	// relay does not know is skipped.
	b, _ := proto.Marshal(&flowctlv1.Event{SourceComponentId: "first", Metadata: map[string]string{resumeTokenKey: "1"}})
	b = protowire.AppendString(protowire.AppendTag(b, 42, protowire.BytesType), "unknown")
	b = withSource(b, "second")
	entry := protowire.AppendString(protowire.AppendTag(nil, fieldMapKey, protowire.BytesType), resumeTokenKey)
	entry = protowire.AppendString(protowire.AppendTag(entry, fieldMapValue, protowire.BytesType), "2")
	b = protowire.AppendBytes(protowire.AppendTag(b, fieldMetadata, protowire.BytesType), entry)
	if got, err := scanEvent(b); err != nil || string(got.source) != "second" || string(got.position) != "2" {
		t.Fatalf("read %q %q (%v), want the last occurrences", got.source, got.position, err)
	}
	if _, err := scanEvent([]byte{0x0a, 0x05, 'a'}); err == nil {
		t.Fatal("a truncated event was read")
	}
}
