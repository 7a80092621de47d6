package controlplane

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/pkg/contract"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// Both protocols name a method Heartbeat, so each has its own type.
type (
	v1Service struct {
		flowctlv1.UnimplementedControlPlaneServiceServer
		s *Server
	}
	legacyService struct {
		flowctlpb.UnimplementedControlPlaneServer
		s *Server
	}
)

// empty answers every call whose response is google.protobuf.Empty; a
// message that is never modified may be marshalled concurrently.
var empty = &emptypb.Empty{}

func (s *Server) unknownService(id string) error {
	s.metrics.UnknownService.Add(1)
	if id == "" {
		return status.Error(codes.InvalidArgument, "flowctl control plane: service_id is required")
	}
	return status.Errorf(codes.NotFound, "flowctl control plane: no registration %q; register first", id)
}

// ---- flowctl.v1.ControlPlaneService ----

func (v *v1Service) RegisterComponent(ctx context.Context, req *flowctlv1.RegisterRequest) (*flowctlv1.RegisterResponse, error) {
	const method = "flowctl.v1.ControlPlaneService/RegisterComponent"
	s := v.s
	info := req.GetComponent()
	healthEndpoint := info.GetMetadata()[contract.MetadataHealthEndpoint]
	ids := []string{info.GetId(), req.GetComponentId()}
	c, addr, by, err := s.authenticateRegistration(ctx, method, ids, healthEndpoint)
	if err != nil {
		return nil, err
	}
	claimed := firstNonEmpty(info.GetId(), req.GetComponentId())
	sid := claimed
	if sid == "" {
		sid = newServiceID()
	}
	r := Registration{
		ServiceID:        sid,
		Protocol:         ProtocolV1,
		Component:        addr,
		AttributedBy:     by,
		ClaimedID:        claimed,
		Type:             typeFromV1(info.GetType()),
		Name:             info.GetName(),
		Description:      info.GetDescription(),
		Version:          info.GetVersion(),
		InputEventTypes:  cloneStrings(info.GetInputEventTypes()),
		OutputEventTypes: cloneStrings(info.GetOutputEventTypes()),
		Endpoint:         info.GetEndpoint(),
		HealthEndpoint:   healthEndpoint,
		Metadata:         cloneMap(info.GetMetadata()),
	}
	if by == Unmanaged {
		r.Unattributed = unattributedWhy(ids, healthEndpoint, c.why)
	}
	if err := s.registerEntry(ctx, method, c, r); err != nil {
		return nil, err
	}
	resp := &flowctlv1.RegisterResponse{ServiceId: sid}
	if tok := s.refreshed(ctx, c); tok != "" {
		resp.ConnectionInfo = map[string]string{ConnectionInfoToken: tok}
	}
	return resp, nil
}

func (v *v1Service) UnregisterComponent(ctx context.Context, req *flowctlv1.UnregisterRequest) (*emptypb.Empty, error) {
	const method = "flowctl.v1.ControlPlaneService/UnregisterComponent"
	s := v.s
	c, err := s.authenticate(ctx, method)
	if err != nil {
		return nil, err
	}
	e := s.reg.get(req.GetServiceId())
	if e == nil {
		return nil, s.unknownService(req.GetServiceId())
	}
	r, _ := e.snapshot()
	if err := s.mayActOn(ctx, method, c, &r); err != nil {
		return nil, err
	}
	if s.remove(r.ServiceID, e) {
		s.metrics.Unregistrations.Add(1)
		s.log.Info("component unregistered", "service_id", r.ServiceID, "component", r.Component)
		s.commit()
	}
	return empty, nil
}

func (v *v1Service) Heartbeat(ctx context.Context, req *flowctlv1.HeartbeatRequest) (*emptypb.Empty, error) {
	const method = "flowctl.v1.ControlPlaneService/Heartbeat"
	s := v.s
	c, err := s.authenticate(ctx, method)
	if err != nil {
		return nil, err
	}
	e := s.reg.get(req.GetServiceId())
	if e == nil {
		return nil, s.unknownService(req.GetServiceId())
	}
	if err := s.heartbeat(ctx, method, c, e, statusFromV1(req.GetStatus()), req.GetMetrics(), nil); err != nil {
		return nil, err
	}
	s.refreshed(ctx, c)
	return empty, nil
}

func (v *v1Service) GetComponentStatus(ctx context.Context, req *flowctlv1.ComponentStatusRequest) (*flowctlv1.ComponentStatusResponse, error) {
	const method = "flowctl.v1.ControlPlaneService/GetComponentStatus"
	s := v.s
	if _, err := s.authenticate(ctx, method); err != nil {
		return nil, err
	}
	r, ok := s.Lookup(req.GetServiceId())
	if !ok {
		return nil, s.unknownService(req.GetServiceId())
	}
	return componentStatus(&r), nil
}

func (v *v1Service) ListComponents(ctx context.Context, req *flowctlv1.ListComponentsRequest) (*flowctlv1.ListComponentsResponse, error) {
	const method = "flowctl.v1.ControlPlaneService/ListComponents"
	s := v.s
	if _, err := s.authenticate(ctx, method); err != nil {
		return nil, err
	}
	want := typeFromV1(req.GetTypeFilter())
	resp := &flowctlv1.ListComponentsResponse{}
	for _, r := range s.Snapshot() {
		if want != "" && r.Type != want {
			continue
		}
		if !req.GetIncludeUnhealthy() && !r.Healthy {
			continue
		}
		resp.Components = append(resp.Components, componentStatus(&r))
	}
	return resp, nil
}

// DiscoverComponents returns the alive registrations that match every
// filter given: type; event types (any of them among the component's input
// or output types); metadata (every key with its value).
func (v *v1Service) DiscoverComponents(ctx context.Context, req *flowctlv1.DiscoveryRequest) (*flowctlv1.DiscoveryResponse, error) {
	const method = "flowctl.v1.ControlPlaneService/DiscoverComponents"
	s := v.s
	if _, err := s.authenticate(ctx, method); err != nil {
		return nil, err
	}
	want := typeFromV1(req.GetType())
	resp := &flowctlv1.DiscoveryResponse{}
	for _, r := range s.Snapshot() {
		if !r.Alive || want != "" && r.Type != want {
			continue
		}
		if et := req.GetEventTypes(); len(et) > 0 && !slices.ContainsFunc(et, func(t string) bool {
			return slices.Contains(r.InputEventTypes, t) || slices.Contains(r.OutputEventTypes, t)
		}) {
			continue
		}
		match := true
		for k, want := range req.GetMetadataFilters() {
			if got, ok := r.Metadata[k]; !ok || got != want {
				match = false
				break
			}
		}
		if match {
			resp.Components = append(resp.Components, componentInfo(&r))
		}
	}
	return resp, nil
}

// ---- flowctl.ControlPlane (older protocol) ----

func (l *legacyService) Register(ctx context.Context, req *flowctlpb.ServiceInfo) (*flowctlpb.RegistrationAck, error) {
	const method = "flowctl.ControlPlane/Register"
	s := l.s
	ids := []string{req.GetServiceId(), req.GetComponentId()}
	c, addr, by, err := s.authenticateRegistration(ctx, method, ids, req.GetHealthEndpoint())
	if err != nil {
		return nil, err
	}
	claimed := firstNonEmpty(req.GetServiceId(), req.GetComponentId())
	sid := claimed
	if sid == "" {
		sid = newServiceID()
	}
	r := Registration{
		ServiceID:        sid,
		Protocol:         ProtocolLegacy,
		Component:        addr,
		AttributedBy:     by,
		ClaimedID:        claimed,
		Type:             typeFromLegacy(req.GetServiceType()),
		InputEventTypes:  cloneStrings(req.GetInputEventTypes()),
		OutputEventTypes: cloneStrings(req.GetOutputEventTypes()),
		HealthEndpoint:   req.GetHealthEndpoint(),
		MaxInflight:      req.GetMaxInflight(),
		Metadata:         cloneMap(req.GetMetadata()),
	}
	if by == Unmanaged {
		r.Unattributed = unattributedWhy(ids, req.GetHealthEndpoint(), c.why)
	}
	if err := s.registerEntry(ctx, method, c, r); err != nil {
		return nil, err
	}
	ack := &flowctlpb.RegistrationAck{ServiceId: sid}
	if tok := s.refreshed(ctx, c); tok != "" {
		ack.ConnectionInfo = map[string]string{ConnectionInfoToken: tok}
	}
	return ack, nil
}

func (l *legacyService) Heartbeat(ctx context.Context, req *flowctlpb.ServiceHeartbeat) (*emptypb.Empty, error) {
	const method = "flowctl.ControlPlane/Heartbeat"
	s := l.s
	c, err := s.authenticate(ctx, method)
	if err != nil {
		return nil, err
	}
	e := s.reg.get(req.GetServiceId())
	if e == nil {
		return nil, s.unknownService(req.GetServiceId())
	}
	if err := s.heartbeat(ctx, method, c, e, "", nil, req.GetMetrics()); err != nil {
		return nil, err
	}
	s.refreshed(ctx, c)
	return empty, nil
}

// GetServiceStatus finds the registration by service_id, or, when that is
// empty, the most recent one whose component id (the pipeline id it is
// attributed to, or the id it sent) is component_id.
func (l *legacyService) GetServiceStatus(ctx context.Context, req *flowctlpb.ServiceInfo) (*flowctlpb.ServiceStatus, error) {
	const method = "flowctl.ControlPlane/GetServiceStatus"
	s := l.s
	if _, err := s.authenticate(ctx, method); err != nil {
		return nil, err
	}
	if id := req.GetServiceId(); id != "" || req.GetComponentId() == "" {
		e := s.reg.get(id)
		if e == nil {
			return nil, s.unknownService(id)
		}
		r, mf := e.snapshot()
		s.fill(&r, s.now())
		return serviceStatus(&r, mf), nil
	}
	cid := req.GetComponentId()
	list := s.Snapshot()
	sortByRegisteredDesc(list)
	for _, r := range list {
		if r.componentID() == cid || r.Component == cid || r.ClaimedID == cid {
			return serviceStatus(&r, nil), nil
		}
	}
	return nil, s.unknownService(cid)
}

func (l *legacyService) ListServices(ctx context.Context, _ *emptypb.Empty) (*flowctlpb.ServiceList, error) {
	const method = "flowctl.ControlPlane/ListServices"
	s := l.s
	if _, err := s.authenticate(ctx, method); err != nil {
		return nil, err
	}
	out := &flowctlpb.ServiceList{}
	for _, r := range s.Snapshot() {
		out.Services = append(out.Services, serviceStatus(&r, nil))
	}
	return out, nil
}

// Pipeline runs are not kept by flowctl: each call is authenticated like
// any other, then answered Unimplemented.

func (l *legacyService) runsUnimplemented(ctx context.Context, method string) error {
	if _, err := l.s.authenticate(ctx, method); err != nil {
		return err
	}
	return status.Errorf(codes.Unimplemented, "flowctl control plane: %s is not implemented (flowctl records applies and restarts in its state history instead)", method)
}

func (l *legacyService) CreatePipelineRun(ctx context.Context, _ *flowctlpb.CreatePipelineRunRequest) (*flowctlpb.PipelineRun, error) {
	return nil, l.runsUnimplemented(ctx, "flowctl.ControlPlane/CreatePipelineRun")
}

func (l *legacyService) UpdatePipelineRun(ctx context.Context, _ *flowctlpb.UpdatePipelineRunRequest) (*flowctlpb.PipelineRun, error) {
	return nil, l.runsUnimplemented(ctx, "flowctl.ControlPlane/UpdatePipelineRun")
}

func (l *legacyService) GetPipelineRun(ctx context.Context, _ *flowctlpb.GetPipelineRunRequest) (*flowctlpb.PipelineRun, error) {
	return nil, l.runsUnimplemented(ctx, "flowctl.ControlPlane/GetPipelineRun")
}

func (l *legacyService) ListPipelineRuns(ctx context.Context, _ *flowctlpb.ListPipelineRunsRequest) (*flowctlpb.ListPipelineRunsResponse, error) {
	return nil, l.runsUnimplemented(ctx, "flowctl.ControlPlane/ListPipelineRuns")
}

func (l *legacyService) StopPipelineRun(ctx context.Context, _ *flowctlpb.StopPipelineRunRequest) (*flowctlpb.PipelineRun, error) {
	return nil, l.runsUnimplemented(ctx, "flowctl.ControlPlane/StopPipelineRun")
}
