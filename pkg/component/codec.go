package component

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// eventCodec is the gRPC codec of the SDK's data-plane servers and of
// Dial. It encodes and decodes Event by hand and leaves every other message
// to gRPC's protobuf codec: the generic protobuf code goes through
// reflection for Event's metadata map, which made encoding and decoding
// events the largest cost of a component that does little else. Its bytes
// are protobuf's (same fields, same rules), so peers see no difference.
//
// Anything the hand-written path does not cover — unknown fields, invalid
// UTF-8, an unexpected wire type — goes to the protobuf codec instead, so
// the results (and errors) are always protobuf's own.
type eventCodec struct{}

var protoCodec = encoding.GetCodecV2(protoenc.Name)

// Name is the protobuf codec's: peers see the content type they expect.
func (eventCodec) Name() string { return protoenc.Name }

func (eventCodec) Marshal(v any) (mem.BufferSlice, error) {
	if ev, ok := v.(*Event); ok && ev != nil {
		if size, ok := eventSize(ev); ok {
			if mem.IsBelowBufferPoolingThreshold(size) {
				return mem.BufferSlice{mem.SliceBuffer(appendEvent(make([]byte, 0, size), ev))}, nil
			}
			pool := mem.DefaultBufferPool()
			buf := pool.Get(size)
			*buf = appendEvent((*buf)[:0], ev)
			return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
		}
	}
	return protoCodec.Marshal(v)
}

func (eventCodec) Unmarshal(data mem.BufferSlice, v any) error {
	ev, ok := v.(*Event)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	// One copy of the message; the payload keeps pointing into it.
	b := data.Materialize()
	ev.Reset()
	if err := decodeEvent(b, ev); err != nil {
		ev.Reset()
		if err := proto.Unmarshal(b, ev); err != nil {
			return err
		}
	}
	return nil
}

// Field numbers of Event and of the messages inside it (docs/compat.md,
// "Data plane"; google.protobuf.Timestamp).
const (
	evID, evType, evPayload, evMetadata, evTimestamp, evSource, evContentType, evCursor protowire.Number = 1, 2, 3, 4, 5, 6, 7, 8

	entryKey, entryValue  protowire.Number = 1, 2
	tsSeconds, tsNanos    protowire.Number = 1, 2
	cursorLedger, cursorI protowire.Number = 1, 2
)

// eventSize is the size of ev's encoding; false when ev holds what only
// the protobuf codec handles.
func eventSize(ev *Event) (int, bool) {
	if len(ev.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	ts, cur := ev.GetTimestamp(), ev.GetStellarCursor()
	if (ts != nil && len(ts.ProtoReflect().GetUnknown()) > 0) || (cur != nil && len(cur.ProtoReflect().GetUnknown()) > 0) {
		return 0, false
	}
	for _, s := range []string{ev.Id, ev.Type, ev.SourceComponentId, ev.ContentType} {
		if !utf8.ValidString(s) {
			return 0, false
		}
	}
	size := stringSize(evID, ev.Id) + stringSize(evType, ev.Type) + stringSize(evSource, ev.SourceComponentId) +
		stringSize(evContentType, ev.ContentType)
	if len(ev.Payload) > 0 {
		size += protowire.SizeTag(evPayload) + protowire.SizeBytes(len(ev.Payload))
	}
	for k, v := range ev.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return 0, false
		}
		size += protowire.SizeTag(evMetadata) + protowire.SizeBytes(entrySize(k, v))
	}
	if ts != nil {
		size += protowire.SizeTag(evTimestamp) + protowire.SizeBytes(timestampSize(ts))
	}
	if cur != nil {
		size += protowire.SizeTag(evCursor) + protowire.SizeBytes(cursorSize(cur))
	}
	return size, true
}

// appendEvent appends ev's encoding to b; eventSize said it can.
func appendEvent(b []byte, ev *Event) []byte {
	ts, cur := ev.GetTimestamp(), ev.GetStellarCursor()
	b = appendString(b, evID, ev.Id)
	b = appendString(b, evType, ev.Type)
	if len(ev.Payload) > 0 {
		b = protowire.AppendTag(b, evPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, ev.Payload)
	}
	for k, v := range ev.Metadata {
		b = protowire.AppendTag(b, evMetadata, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entrySize(k, v)))
		b = protowire.AppendTag(b, entryKey, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, entryValue, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	if ts != nil {
		b = protowire.AppendTag(b, evTimestamp, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(timestampSize(ts)))
		b = appendVarintField(b, tsSeconds, uint64(ts.Seconds))
		b = appendVarintField(b, tsNanos, uint64(ts.Nanos))
	}
	b = appendString(b, evSource, ev.SourceComponentId)
	b = appendString(b, evContentType, ev.ContentType)
	if cur != nil {
		b = protowire.AppendTag(b, evCursor, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(cursorSize(cur)))
		b = appendVarintField(b, cursorLedger, cur.LedgerSequence)
		b = appendVarintField(b, cursorI, uint64(cur.IndexInLedger))
	}
	return b
}

func stringSize(n protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeBytes(len(s))
}

func appendString(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// entrySize is the size of a map entry: protobuf writes key and value even
// when empty.
func entrySize(k, v string) int {
	return protowire.SizeTag(entryKey) + protowire.SizeBytes(len(k)) + protowire.SizeTag(entryValue) + protowire.SizeBytes(len(v))
}

func varintFieldSize(n protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeVarint(v)
}

func appendVarintField(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func timestampSize(ts *timestamppb.Timestamp) int {
	return varintFieldSize(tsSeconds, uint64(ts.Seconds)) + varintFieldSize(tsNanos, uint64(ts.Nanos))
}

func cursorSize(c *flowctlv1.StellarCursor) int {
	return varintFieldSize(cursorLedger, c.LedgerSequence) + varintFieldSize(cursorI, uint64(c.IndexInLedger))
}

// errFallback sends a message to the protobuf codec.
var errFallback = errors.New("not for the hand-written decoder")

// decodeEvent decodes b into ev (which is empty, as gRPC hands it); the
// payload points into b. Any error means: let protobuf decode it.
func decodeEvent(b []byte, ev *Event) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errFallback
		}
		b = b[n:]
		if typ != protowire.BytesType || num < evID || num > evCursor {
			return errFallback // unknown fields, wrong types: protobuf's rules apply
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errFallback
		}
		b = b[n:]
		switch num {
		case evID, evType, evSource, evContentType:
			if !utf8.Valid(v) {
				return errFallback
			}
			s := string(v)
			switch num {
			case evID:
				ev.Id = s
			case evType:
				ev.Type = s
			case evSource:
				ev.SourceComponentId = s
			default:
				ev.ContentType = s
			}
		case evPayload:
			ev.Payload = v[:len(v):len(v)]
		case evMetadata:
			k, val, err := decodeEntry(v)
			if err != nil {
				return err
			}
			if ev.Metadata == nil {
				ev.Metadata = make(map[string]string, 1)
			}
			ev.Metadata[k] = val
		case evTimestamp:
			s, ns, err := decodePair(v)
			if err != nil {
				return err
			}
			if ev.Timestamp == nil {
				ev.Timestamp = &timestamppb.Timestamp{}
			}
			// A repeated message field merges: a field absent from a later
			// occurrence keeps its earlier value.
			if s.set {
				ev.Timestamp.Seconds = int64(s.v)
			}
			if ns.set {
				ev.Timestamp.Nanos = int32(ns.v)
			}
		case evCursor:
			l, i, err := decodePair(v)
			if err != nil {
				return err
			}
			if ev.StellarCursor == nil {
				ev.StellarCursor = &flowctlv1.StellarCursor{}
			}
			if l.set {
				ev.StellarCursor.LedgerSequence = l.v
			}
			if i.set {
				ev.StellarCursor.IndexInLedger = uint32(i.v)
			}
		}
	}
	return nil
}

func decodeEntry(b []byte) (key, value string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType || (num != entryKey && num != entryValue) {
			return "", "", errFallback
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 || !utf8.Valid(v) {
			return "", "", errFallback
		}
		b = b[n:]
		if num == entryKey {
			key = string(v)
		} else {
			value = string(v)
		}
	}
	return key, value, nil
}

// varintValue is a varint field as read, and whether it was present.
type varintValue struct {
	v   uint64
	set bool
}

// decodePair reads a message of two varint fields, numbered 1 and 2 (a
// Timestamp, a StellarCursor).
func decodePair(b []byte) (first, second varintValue, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType || (num != 1 && num != 2) {
			return first, second, errFallback
		}
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return first, second, errFallback
		}
		b = b[n:]
		if num == 1 {
			first = varintValue{v, true}
		} else {
			second = varintValue{v, true}
		}
	}
	return first, second, nil
}
