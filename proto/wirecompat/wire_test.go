package wirecompat

import (
	"bytes"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// enc builds a message by hand, field by field, in field-number order (the
// order Go's deterministic marshalling uses).
type enc []byte

func (b enc) str(n protowire.Number, s string) enc {
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func (b enc) bytes(n protowire.Number, v []byte) enc {
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func (b enc) varint(n protowire.Number, v uint64) enc {
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (b enc) msg(n protowire.Number, m enc) enc { return b.bytes(n, m) }

// mapEntry is one entry of a map field: key 1, value 2.
func strEntry(k, v string) enc { return enc(nil).str(1, k).str(2, v) }

func doubleEntry(k string, v float64) enc {
	e := enc(nil).str(1, k)
	e = protowire.AppendTag(e, 2, protowire.Fixed64Type)
	return protowire.AppendFixed64(e, math.Float64bits(v))
}

// timestamp is a google.protobuf.Timestamp; proto3 leaves zero fields out.
func timestamp(sec int64, nanos int32) enc {
	var e enc
	if sec != 0 {
		e = e.varint(1, uint64(sec))
	}
	if nanos != 0 {
		e = e.varint(2, uint64(nanos))
	}
	return e
}

func check(t *testing.T, name string, m proto.Message, want enc) {
	t.Helper()
	got, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: wire bytes differ\n got  %x\n want %x", name, got, []byte(want))
	}
	// And the hand-built bytes decode into an equal message.
	back := m.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(want, back); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !proto.Equal(back, m) {
		t.Fatalf("%s: hand-built bytes decode to %v", name, back)
	}
}

func TestLegacyWire(t *testing.T) {
	check(t, "ServiceInfo", &flowctlpb.ServiceInfo{
		ServiceId:        "svc",
		ServiceType:      flowctlpb.ServiceType_SERVICE_TYPE_SINK,
		InputEventTypes:  []string{"in"},
		OutputEventTypes: []string{"out"},
		HealthEndpoint:   "http://localhost:8088/health",
		MaxInflight:      7,
		Metadata:         map[string]string{"k": "v"},
		ComponentId:      "ledger",
	}, enc(nil).str(1, "svc").varint(2, 3).str(3, "in").str(4, "out").str(5, "http://localhost:8088/health").
		varint(6, 7).msg(7, strEntry("k", "v")).str(8, "ledger"))

	check(t, "RegistrationAck", &flowctlpb.RegistrationAck{
		ServiceId: "svc", TopicNames: []string{"t"}, ConnectionInfo: map[string]string{"flowctl_token": "x"},
	}, enc(nil).str(1, "svc").str(2, "t").msg(3, strEntry("flowctl_token", "x")))

	check(t, "ServiceHeartbeat", &flowctlpb.ServiceHeartbeat{
		ServiceId: "svc", Timestamp: &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 5}, Metrics: map[string]float64{"m": 1.5},
	}, enc(nil).str(1, "svc").msg(2, timestamp(1700000000, 5)).msg(3, doubleEntry("m", 1.5)))

	check(t, "ServiceStatus", &flowctlpb.ServiceStatus{
		ServiceId: "svc", ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_PIPELINE, IsHealthy: true,
		LastHeartbeat: &timestamppb.Timestamp{Seconds: 9}, Metrics: map[string]float64{"m": 2}, ComponentId: "c",
	}, enc(nil).str(1, "svc").varint(2, 4).varint(3, 1).msg(4, timestamp(9, 0)).msg(5, doubleEntry("m", 2)).str(6, "c"))

	check(t, "ServiceList", &flowctlpb.ServiceList{Services: []*flowctlpb.ServiceStatus{{ServiceId: "a"}}},
		enc(nil).msg(1, enc(nil).str(1, "a")))
}

func TestV1ControlPlaneWire(t *testing.T) {
	info := &flowctlv1.ComponentInfo{
		Id: "ledger", Name: "n", Description: "d", Version: "v", Type: flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER,
		InputEventTypes: []string{"i"}, OutputEventTypes: []string{"o"}, Endpoint: "127.0.0.1:50051", Metadata: map[string]string{"k": "v"},
	}
	infoEnc := enc(nil).str(1, "ledger").str(2, "n").str(3, "d").str(4, "v").varint(5, 3).str(6, "i").str(7, "o").
		str(8, "127.0.0.1:50051").msg(9, strEntry("k", "v"))
	check(t, "ComponentInfo", info, infoEnc)
	check(t, "RegisterRequest", &flowctlv1.RegisterRequest{Component: info, ComponentId: "ledger"},
		enc(nil).msg(1, infoEnc).str(2, "ledger"))
	check(t, "RegisterResponse", &flowctlv1.RegisterResponse{ServiceId: "s", AssignedTopics: []string{"t"}, ConnectionInfo: map[string]string{"a": "b"}},
		enc(nil).str(1, "s").str(2, "t").msg(3, strEntry("a", "b")))
	check(t, "UnregisterRequest", &flowctlv1.UnregisterRequest{ServiceId: "s"}, enc(nil).str(1, "s"))
	check(t, "DiscoveryRequest", &flowctlv1.DiscoveryRequest{Type: flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR, EventTypes: []string{"e"}, MetadataFilters: map[string]string{"k": "v"}},
		enc(nil).varint(1, 2).str(2, "e").msg(3, strEntry("k", "v")))
	check(t, "DiscoveryResponse", &flowctlv1.DiscoveryResponse{Components: []*flowctlv1.ComponentInfo{info}}, enc(nil).msg(1, infoEnc))
	check(t, "HeartbeatRequest", &flowctlv1.HeartbeatRequest{ServiceId: "s", Status: flowctlv1.HealthStatus_HEALTH_STATUS_STOPPING, Metrics: map[string]string{"m": "1"}},
		enc(nil).str(1, "s").varint(2, 5).msg(3, strEntry("m", "1")))
	check(t, "ComponentStatusRequest", &flowctlv1.ComponentStatusRequest{ServiceId: "s"}, enc(nil).str(1, "s"))
	status := &flowctlv1.ComponentStatusResponse{Component: info, Status: flowctlv1.HealthStatus_HEALTH_STATUS_DEGRADED,
		LastHeartbeat: &timestamppb.Timestamp{Seconds: 3}, Metrics: map[string]string{"m": "1"}, RegisteredAt: &timestamppb.Timestamp{Seconds: 2}}
	statusEnc := enc(nil).msg(1, infoEnc).varint(2, 3).msg(3, timestamp(3, 0)).msg(4, strEntry("m", "1")).msg(5, timestamp(2, 0))
	check(t, "ComponentStatusResponse", status, statusEnc)
	check(t, "ListComponentsRequest", &flowctlv1.ListComponentsRequest{TypeFilter: flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE, IncludeUnhealthy: true},
		enc(nil).varint(1, 1).varint(2, 1))
	check(t, "ListComponentsResponse", &flowctlv1.ListComponentsResponse{Components: []*flowctlv1.ComponentStatusResponse{status}}, enc(nil).msg(1, statusEnc))
}

func TestV1DataPlaneWire(t *testing.T) {
	seq, idx := uint64(123456), uint32(7)
	check(t, "Event", &flowctlv1.Event{
		Id: "e1", Type: "t", Payload: []byte{0, 1}, Metadata: map[string]string{"k": "v"}, Timestamp: &timestamppb.Timestamp{Seconds: 4},
		SourceComponentId: "ledger", ContentType: "application/x-protobuf",
		StellarCursor: &flowctlv1.StellarCursor{LedgerSequence: seq, IndexInLedger: idx},
	}, enc(nil).str(1, "e1").str(2, "t").bytes(3, []byte{0, 1}).msg(4, strEntry("k", "v")).msg(5, timestamp(4, 0)).
		str(6, "ledger").str(7, "application/x-protobuf").msg(8, enc(nil).varint(1, seq).varint(2, uint64(idx))))
	// optional stellar_cursor: present-but-empty is distinguishable from absent.
	check(t, "Event with empty cursor", &flowctlv1.Event{StellarCursor: &flowctlv1.StellarCursor{}}, enc(nil).msg(8, nil))
	check(t, "StreamRequest", &flowctlv1.StreamRequest{Params: map[string]string{"START_LEDGER": "1"}, Resume: true, ResumeToken: "r"},
		enc(nil).msg(1, strEntry("START_LEDGER", "1")).varint(2, 1).str(3, "r"))
	check(t, "StateRequest", &flowctlv1.StateRequest{Key: "k"}, enc(nil).str(1, "k"))
	check(t, "StateResponse", &flowctlv1.StateResponse{State: map[string]string{"a": "b"}, ResumeToken: "r", LastUpdatedUnix: 99},
		enc(nil).msg(1, strEntry("a", "b")).str(2, "r").varint(3, 99))
	check(t, "SaveStateRequest", &flowctlv1.SaveStateRequest{State: map[string]string{"a": "b"}, Key: "k"},
		enc(nil).msg(1, strEntry("a", "b")).str(2, "k"))
	check(t, "HealthCheckRequest", &flowctlv1.HealthCheckRequest{IncludeDetails: true}, enc(nil).varint(1, 1))
	check(t, "HealthCheckResponse", &flowctlv1.HealthCheckResponse{
		Status: flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY, Metrics: map[string]string{"m": "1"},
		Components: []*flowctlv1.ComponentHealth{{ComponentName: "c", Status: flowctlv1.HealthStatus_HEALTH_STATUS_STARTING, Message: "x"}}, Message: "ok",
	}, enc(nil).varint(1, 2).msg(2, strEntry("m", "1")).msg(3, enc(nil).str(1, "c").varint(2, 1).str(3, "x")).str(4, "ok"))
	check(t, "ConsumeResponse", &flowctlv1.ConsumeResponse{EventsConsumed: 10, EventsFailed: 2, Errors: []string{"e"}},
		enc(nil).varint(1, 10).varint(2, 2).str(3, "e"))
}

// Fully-qualified names are part of the wire (the HTTP/2 path
// /flowctl.ControlPlane/Register), and so are enum numbers.
func TestServiceAndEnumNames(t *testing.T) {
	services := map[protoreflect.FileDescriptor]map[string][]string{
		flowctlpb.File_flowctl_controlplane_proto: {
			"flowctl.ControlPlane": {"Register", "Heartbeat", "GetServiceStatus", "ListServices", "CreatePipelineRun", "UpdatePipelineRun", "GetPipelineRun", "ListPipelineRuns", "StopPipelineRun"},
		},
		flowctlv1.File_flowctl_v1_control_plane_proto: {
			"flowctl.v1.ControlPlaneService": {"RegisterComponent", "UnregisterComponent", "DiscoverComponents", "Heartbeat", "GetComponentStatus", "ListComponents"},
		},
		flowctlv1.File_flowctl_v1_data_plane_proto: {
			"flowctl.v1.SourceService":    {"GetInfo", "HealthCheck", "StreamEvents", "GetState", "SaveState"},
			"flowctl.v1.ProcessorService": {"GetInfo", "HealthCheck", "Process"},
			"flowctl.v1.ConsumerService":  {"GetInfo", "HealthCheck", "Consume"},
		},
	}
	for fd, want := range services {
		got := map[string][]string{}
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				got[string(sd.FullName())] = append(got[string(sd.FullName())], string(sd.Methods().Get(j).Name()))
			}
		}
		for svc, methods := range want {
			if len(got[svc]) != len(methods) {
				t.Fatalf("%s: methods %v, want %v", svc, got[svc], methods)
			}
			for i := range methods {
				if got[svc][i] != methods[i] {
					t.Fatalf("%s: methods %v, want %v", svc, got[svc], methods)
				}
			}
		}
	}
	if flowctlv1.File_flowctl_v1_data_plane_proto.Services().ByName("ProcessorService").Methods().ByName("Process").IsStreamingClient() != true {
		t.Fatal("Process is not a client stream")
	}
	enums := map[protoreflect.EnumDescriptor][]string{
		flowctlpb.ServiceType(0).Descriptor():   {"SERVICE_TYPE_UNSPECIFIED", "SERVICE_TYPE_SOURCE", "SERVICE_TYPE_PROCESSOR", "SERVICE_TYPE_SINK", "SERVICE_TYPE_PIPELINE"},
		flowctlv1.ComponentType(0).Descriptor(): {"COMPONENT_TYPE_UNSPECIFIED", "COMPONENT_TYPE_SOURCE", "COMPONENT_TYPE_PROCESSOR", "COMPONENT_TYPE_CONSUMER"},
		flowctlv1.HealthStatus(0).Descriptor():  {"HEALTH_STATUS_UNKNOWN", "HEALTH_STATUS_STARTING", "HEALTH_STATUS_HEALTHY", "HEALTH_STATUS_DEGRADED", "HEALTH_STATUS_UNHEALTHY", "HEALTH_STATUS_STOPPING"},
	}
	for ed, names := range enums {
		for n, name := range names {
			v := ed.Values().ByNumber(protoreflect.EnumNumber(n))
			if v == nil || string(v.Name()) != name {
				t.Fatalf("%s: number %d is %v, want %s", ed.FullName(), n, v, name)
			}
		}
	}
	for msg, full := range map[proto.Message]string{
		&flowctlpb.ServiceInfo{}:        "flowctl.ServiceInfo",
		&flowctlv1.RegisterRequest{}:    "flowctl.v1.RegisterRequest",
		&flowctlv1.Event{}:              "flowctl.v1.Event",
		&flowctlv1.ConsumeResponse{}:    "flowctl.v1.ConsumeResponse",
		&flowctlv1.HealthCheckRequest{}: "flowctl.v1.HealthCheckRequest",
	} {
		if got := string(msg.ProtoReflect().Descriptor().FullName()); got != full {
			t.Fatalf("%s, want %s", got, full)
		}
	}
}
