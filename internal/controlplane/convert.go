package controlplane

import (
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/config"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// Component types as registrations record them.
const (
	TypeSource    = "source"
	TypeProcessor = "processor"
	TypeSink      = "sink"
	TypePipeline  = "pipeline" // older protocol only
)

func typeFromV1(t flowctlv1.ComponentType) string {
	switch t {
	case flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE:
		return TypeSource
	case flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR:
		return TypeProcessor
	case flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER:
		return TypeSink
	}
	return ""
}

func typeToV1(t string) flowctlv1.ComponentType {
	switch t {
	case TypeSource:
		return flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE
	case TypeProcessor:
		return flowctlv1.ComponentType_COMPONENT_TYPE_PROCESSOR
	case TypeSink:
		return flowctlv1.ComponentType_COMPONENT_TYPE_CONSUMER
	}
	return flowctlv1.ComponentType_COMPONENT_TYPE_UNSPECIFIED
}

func typeFromLegacy(t flowctlpb.ServiceType) string {
	switch t {
	case flowctlpb.ServiceType_SERVICE_TYPE_SOURCE:
		return TypeSource
	case flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR:
		return TypeProcessor
	case flowctlpb.ServiceType_SERVICE_TYPE_SINK:
		return TypeSink
	case flowctlpb.ServiceType_SERVICE_TYPE_PIPELINE:
		return TypePipeline
	}
	return ""
}

func typeToLegacy(t string) flowctlpb.ServiceType {
	switch t {
	case TypeSource:
		return flowctlpb.ServiceType_SERVICE_TYPE_SOURCE
	case TypeProcessor:
		return flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR
	case TypeSink:
		return flowctlpb.ServiceType_SERVICE_TYPE_SINK
	case TypePipeline:
		return flowctlpb.ServiceType_SERVICE_TYPE_PIPELINE
	}
	return flowctlpb.ServiceType_SERVICE_TYPE_UNSPECIFIED
}

// statusFromV1 names a reported status; statuses beyond the enum (a newer
// component) read as unknown.
func statusFromV1(s flowctlv1.HealthStatus) string {
	switch s {
	case flowctlv1.HealthStatus_HEALTH_STATUS_STARTING:
		return StatusStarting
	case flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY:
		return StatusHealthy
	case flowctlv1.HealthStatus_HEALTH_STATUS_DEGRADED:
		return StatusDegraded
	case flowctlv1.HealthStatus_HEALTH_STATUS_UNHEALTHY:
		return StatusUnhealthy
	case flowctlv1.HealthStatus_HEALTH_STATUS_STOPPING:
		return StatusStopping
	}
	return StatusUnknown
}

// statusToV1 is the status the current protocol reports for r: UNHEALTHY
// when it missed its heartbeats, HEALTHY for an alive component that reports
// UNKNOWN (the SDK's default), otherwise what it reported.
func statusToV1(r *Registration) flowctlv1.HealthStatus {
	if !r.Alive {
		return flowctlv1.HealthStatus_HEALTH_STATUS_UNHEALTHY
	}
	switch r.Status {
	case StatusStarting:
		return flowctlv1.HealthStatus_HEALTH_STATUS_STARTING
	case StatusDegraded:
		return flowctlv1.HealthStatus_HEALTH_STATUS_DEGRADED
	case StatusUnhealthy:
		return flowctlv1.HealthStatus_HEALTH_STATUS_UNHEALTHY
	case StatusStopping:
		return flowctlv1.HealthStatus_HEALTH_STATUS_STOPPING
	}
	return flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func durationOf(d time.Duration) config.Duration { return config.Duration(d) }

func componentInfo(r *Registration) *flowctlv1.ComponentInfo {
	id := r.ClaimedID
	if id == "" {
		id = r.ServiceID
	}
	return &flowctlv1.ComponentInfo{
		Id:               id,
		Name:             r.Name,
		Description:      r.Description,
		Version:          r.Version,
		Type:             typeToV1(r.Type),
		InputEventTypes:  r.InputEventTypes,
		OutputEventTypes: r.OutputEventTypes,
		Endpoint:         r.Endpoint,
		Metadata:         r.Metadata,
	}
}

func componentStatus(r *Registration) *flowctlv1.ComponentStatusResponse {
	return &flowctlv1.ComponentStatusResponse{
		Component:     componentInfo(r),
		Status:        statusToV1(r),
		LastHeartbeat: ts(r.LastHeartbeat),
		Metrics:       r.Metrics,
		RegisteredAt:  ts(r.RegisteredAt),
	}
}

func serviceStatus(r *Registration, mf map[string]float64) *flowctlpb.ServiceStatus {
	if mf == nil && len(r.Metrics) > 0 {
		mf = make(map[string]float64, len(r.Metrics))
		for k, v := range r.Metrics {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				mf[k] = f
			}
		}
	}
	cid := r.componentID()
	if cid == "" {
		cid = r.ClaimedID
	}
	return &flowctlpb.ServiceStatus{
		ServiceId:     r.ServiceID,
		ServiceType:   typeToLegacy(r.Type),
		IsHealthy:     r.Healthy,
		LastHeartbeat: ts(r.LastHeartbeat),
		Metrics:       mf,
		ComponentId:   cid,
	}
}

func sortByRegisteredDesc(list []Registration) {
	slices.SortStableFunc(list, func(a, b Registration) int { return b.RegisteredAt.Compare(a.RegisteredAt) })
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
