// Package contract defines, once, what flowctl and the components it runs
// agree on: the environment variables flowctl injects into every component,
// the headers and metadata its control plane reads, and their defaults.
// docs/compat.md describes the same contract in prose; the engine, every
// provider and the component SDK (pkg/component) use these names.
package contract

import "time"

// Environment variables flowctl injects into every component. A user's env
// wins over each of them except EnvEndpoint, EnvEnableFlowctl (both set
// whenever a control plane is in use) and the token variables.
const (
	// EnvEnableFlowctl is "true" when control-plane integration is on;
	// older components read it.
	EnvEnableFlowctl = "ENABLE_FLOWCTL"
	// EnvEndpoint is the control plane's host:port (components in the
	// wild default to localhost:8080).
	EnvEndpoint = "FLOWCTL_ENDPOINT"
	// EnvHeartbeatInterval is a Go duration, e.g. "10s".
	EnvHeartbeatInterval = "FLOWCTL_HEARTBEAT_INTERVAL"
	// EnvComponentID is the component's pipeline id; EnvServiceID,
	// EnvPlainComponentID and EnvPlainServiceID carry the same id for
	// components that read those names instead.
	EnvComponentID      = "FLOWCTL_COMPONENT_ID"
	EnvServiceID        = "FLOWCTL_SERVICE_ID"
	EnvPlainComponentID = "COMPONENT_ID"
	EnvPlainServiceID   = "SERVICE_ID"
	// EnvPipeline, EnvLineage, EnvInstanceID, EnvSpecHash and
	// EnvComponentAddress say which pipeline, state, instance and spec a
	// process belongs to: providers read them back to recognise their
	// objects.
	EnvPipeline         = "FLOWCTL_PIPELINE"
	EnvLineage          = "FLOWCTL_LINEAGE"
	EnvInstanceID       = "FLOWCTL_INSTANCE_ID"
	EnvSpecHash         = "FLOWCTL_SPEC_HASH"
	EnvComponentAddress = "FLOWCTL_COMPONENT_ADDRESS"
	// EnvComponentToken is the instance's JWT component token;
	// EnvPlainComponentToken carries the same token.
	EnvComponentToken      = "FLOWCTL_COMPONENT_TOKEN"
	EnvPlainComponentToken = "COMPONENT_TOKEN"
	// EnvPort is the component's gRPC data port, EnvHealthPort the port of
	// its HTTP health server (/health); both are bare numbers.
	EnvPort       = "PORT"
	EnvHealthPort = "HEALTH_PORT"
)

// Data-plane settings flowctl injects into every component
// (docs/data-plane-auth.md). EnvDataPlaneKey is not overridable by a
// pipeline's env; EnvBindAddress is (a pipeline may declare where a
// component listens).
const (
	// EnvDataPlaneKey is the public key that verifies data tokens: the
	// base64 (standard, padded) of the Ed25519 key's PKIX DER encoding, the
	// body of a PEM "PUBLIC KEY" block on one line.
	EnvDataPlaneKey = "FLOWCTL_DATA_PLANE_KEY"
	// EnvBindAddress is the IP address a component's data and health
	// ports listen on: 127.0.0.1 for components that share flowctl's host
	// network, 0.0.0.0 inside a container or a pod (its own network).
	EnvBindAddress = "FLOWCTL_BIND_ADDRESS"
	// EnvDataPlaneInsecure set to "true" lets an SDK component serve its
	// data plane without verifying callers (no EnvDataPlaneKey): for
	// running a component by hand, never under flowctl.
	EnvDataPlaneInsecure = "FLOWCTL_DATA_PLANE_INSECURE"
)

// Data tokens: JWTs (EdDSA, Ed25519) that flowctl issues to the callers of
// components' data planes, sent as AuthorizationHeader like component
// tokens.
const (
	// DataPlaneAudience is the aud of every data token.
	DataPlaneAudience = "data-plane"
	// DataPlaneRelaySubject is the sub of the data token of the relay that
	// `flowctl serve` runs; only it may move a source's position
	// (SourceService.SaveState).
	DataPlaneRelaySubject = "relay"
	// DataPlaneIssuer is the iss of every data token.
	DataPlaneIssuer = "flowctl"
)

// DefaultBindAddress is where a component listens when EnvBindAddress is
// unset: loopback only.
const DefaultBindAddress = "127.0.0.1"

// EnvStateDir names the folder where an SDK component keeps its state
// (pkg/component's Store). flowctl does not inject it: a pipeline sets it
// in a component's env when the default folder does not suit.
const EnvStateDir = "FLOWCTL_STATE_DIR"

// PortNames are the ports flowctl allocates for each component, by the
// variable that carries them.
func PortNames() []string { return []string{EnvPort, EnvHealthPort} }

// DefaultHeartbeatInterval is the heartbeat interval flowctl asks of the
// components it starts (EnvHeartbeatInterval).
const DefaultHeartbeatInterval = 10 * time.Second

// DefaultEndpoint is where components in the wild look for the control
// plane when EnvEndpoint is unset.
const DefaultEndpoint = "localhost:8080"

// AuthorizationHeader is the gRPC metadata key of a component token, sent
// as AuthorizationScheme, a space and the token.
const AuthorizationHeader = "authorization"

// AuthorizationScheme is the scheme of AuthorizationHeader's value; the
// control plane compares it without regard to case.
const AuthorizationScheme = "Bearer"

// RefreshedTokenHeader is the response header metadata key that carries a
// fresh component token when the one presented is past half its life.
// Heartbeat answers google.protobuf.Empty, so the header is the only place
// a heartbeat can return it; register responses carry it too.
const RefreshedTokenHeader = "flowctl-token"

// ConnectionInfoToken is the connection_info key under which register
// responses of both protocols (RegistrationAck, RegisterResponse) carry a
// refreshed component token.
const ConnectionInfoToken = "flowctl_token"

// MetadataHealthEndpoint is the ComponentInfo.metadata key where a
// component of the current protocol may give its health URL; the older
// protocol has a field of its own (ServiceInfo.health_endpoint). Its port
// attributes a registration that carries neither token nor known id.
const MetadataHealthEndpoint = "health_endpoint"

// ResumeTokenKey is the Event.metadata key of a source's position, which
// processors copy onto their outputs; it is also the SaveState key under
// which the position acknowledged by every sink downstream is committed.
const ResumeTokenKey = "resume_token"
