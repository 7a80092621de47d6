package component

import (
	"math"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// codecEvents are events whose encoding covers every field, the zero
// values protobuf leaves out and the values it must keep.
func codecEvents() []*Event {
	withUnknown := &Event{Id: "u"}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "later field"))
	tsUnknown := &Event{Id: "t", Timestamp: &timestamppb.Timestamp{Seconds: 1}}
	tsUnknown.Timestamp.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.VarintType), 3))
	return []*Event{
		{},
		{Id: "counter-1", Type: "counter.tick", Payload: []byte(`{"seq":1}`), Metadata: map[string]string{"resume_token": "1"},
			Timestamp: timestamppb.Now(), SourceComponentId: "counter", ContentType: "application/json"},
		{Metadata: map[string]string{"": "v", "k": ""}},
		{Timestamp: &timestamppb.Timestamp{}},
		{Timestamp: &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -1}},
		{Timestamp: &timestamppb.Timestamp{Seconds: math.MaxInt64, Nanos: math.MaxInt32}},
		{StellarCursor: &flowctlv1.StellarCursor{}},
		{StellarCursor: &flowctlv1.StellarCursor{LedgerSequence: math.MaxUint64, IndexInLedger: math.MaxUint32}},
		{Payload: make([]byte, 70_000)},
		{Id: "héllo ✓", Metadata: map[string]string{"ключ": "значение"}},
		{Id: "bad \xff utf-8"},
		{Metadata: map[string]string{"k": "bad \xfe"}},
		withUnknown,
		tsUnknown,
	}
}

// TestEventCodecMatchesProtobuf: what the SDK's codec encodes, protobuf
// decodes to the same event, and the other way round — including the
// events it leaves to protobuf (unknown fields, invalid UTF-8), where the
// errors must be protobuf's too.
func TestEventCodecMatchesProtobuf(t *testing.T) {
	c := eventCodec{}
	for i, ev := range codecEvents() {
		want, wantErr := proto.Marshal(ev)
		data, err := c.Marshal(ev)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("event %d: marshal error %v, protobuf's %v", i, err, wantErr)
		}
		if err != nil {
			continue
		}
		got := data.Materialize()
		data.Free()
		var back Event
		if err := proto.Unmarshal(got, &back); err != nil || !proto.Equal(&back, ev) {
			t.Fatalf("event %d: protobuf decodes the codec's bytes to %v (%v), want %v", i, &back, err, ev)
		}
		var dec Event
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, &dec); err != nil || !proto.Equal(&dec, ev) {
			t.Fatalf("event %d: the codec decodes protobuf's bytes to %v (%v), want %v", i, &dec, err, ev)
		}
		if len(ev.ProtoReflect().GetUnknown()) > 0 && string(dec.ProtoReflect().GetUnknown()) != string(ev.ProtoReflect().GetUnknown()) {
			t.Fatalf("event %d: unknown fields lost", i)
		}
	}
}

// FuzzEventCodecDecodesAsProtobuf feeds arbitrary bytes to the codec's
// decoder: it must decode exactly what protobuf decodes, and fail where
// protobuf fails.
func FuzzEventCodecDecodesAsProtobuf(f *testing.F) {
	for _, ev := range codecEvents() {
		if b, err := proto.Marshal(ev); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{0x22, 0x02, 0x0a, 0x00, 0x2a, 0x02, 0x08, 0x01, 0x2a, 0x02, 0x10, 0x02}) // metadata entry, timestamp in two parts
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got Event
		wantErr := proto.Unmarshal(b, &want)
		err := eventCodec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, protobuf's %v", err, wantErr)
		}
		if err == nil && !proto.Equal(&got, &want) {
			t.Fatalf("decoded %v, protobuf %v", &got, &want)
		}
	})
}

func BenchmarkEventCodec(b *testing.B) {
	ev := &Event{Id: "counter-123456", Type: "counter.tick", Payload: make([]byte, 1<<10),
		Metadata: map[string]string{"resume_token": "123456"}, Timestamp: timestamppb.Now(), SourceComponentId: "counter"}
	enc, _ := proto.Marshal(ev)
	for _, c := range []struct {
		name  string
		codec interface {
			Marshal(any) (mem.BufferSlice, error)
			Unmarshal(mem.BufferSlice, any) error
		}
	}{{"sdk", eventCodec{}}, {"protobuf", protoCodec}} {
		b.Run("marshal/"+c.name, func(b *testing.B) {
			for b.Loop() {
				d, err := c.codec.Marshal(ev)
				if err != nil {
					b.Fatal(err)
				}
				d.Free()
			}
		})
		b.Run("unmarshal/"+c.name, func(b *testing.B) {
			for b.Loop() {
				var e Event
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(enc)}, &e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
