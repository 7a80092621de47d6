package relay

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The relay moves events as the bytes that came off the wire: it reads the
// two fields it needs (the source id and the position, scanEvent) and
// never decodes nor re-encodes an event. Decoding an Event (its metadata
// map goes through reflection) and encoding it again cost more than the
// rest of the relay together.

// Field numbers of flowctl.v1.Event (docs/compat.md, "Data plane") and of
// its metadata map's entries.
const (
	fieldMetadata          protowire.Number = 4
	fieldSourceComponentID protowire.Number = 6
	fieldMapKey            protowire.Number = 1
	fieldMapValue          protowire.Number = 2
)

// frame is one encoded flowctl.v1.Event; the codec fills and sends it as it
// is.
type frame struct{ b []byte }

// codec is the relay's gRPC codec: frames pass through as bytes, every
// other message goes to gRPC's protobuf codec. Its name is that codec's, so
// components see the content type they expect.
type codec struct{}

var protoCodec = encoding.GetCodecV2(protoenc.Name)

func (codec) Name() string { return protoenc.Name }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.b)}, nil
	}
	return protoCodec.Marshal(v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		f.b = data.Materialize()
		return nil
	}
	return protoCodec.Unmarshal(data, v)
}

// eventFields are what the relay reads of an event; both point into the
// event's bytes.
type eventFields struct {
	source   []byte // source_component_id
	position []byte // metadata[resume_token]
}

var errMalformed = errors.New("malformed event")

// scanEvent reads an encoded Event's source id and position. As when
// decoding, the last occurrence of a field wins.
func scanEvent(b []byte) (eventFields, error) {
	var f eventFields
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return f, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == fieldSourceComponentID || num == fieldMetadata) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return f, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
			}
			b = b[n:]
			if num == fieldSourceComponentID {
				f.source = v
			} else if k, val, err := mapEntry(v); err != nil {
				return f, err
			} else if string(k) == resumeTokenKey {
				f.position = val
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return f, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return f, nil
}

// mapEntry reads a map<string,string> entry.
func mapEntry(b []byte) (key, value []byte, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == fieldMapKey || num == fieldMapValue) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, nil, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
			}
			b = b[n:]
			if num == fieldMapKey {
				key = v
			} else {
				value = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, nil, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return key, value, nil
}

// withSource returns b with its source_component_id set to id: a field
// appended to an encoded message overrides an earlier one.
func withSource(b []byte, id string) []byte {
	b = protowire.AppendTag(b, fieldSourceComponentID, protowire.BytesType)
	return protowire.AppendString(b, id)
}
