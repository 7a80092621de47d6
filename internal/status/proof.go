package status

import "github.com/flowctl/flowctl/internal/controlplane"

// proofOf says how a registration was proven (its Proof); registrations
// kept by an older control plane have only Auth.
func proofOf(r *controlplane.Registration) string {
	if r.Proof != "" {
		return r.Proof
	}
	if r.Auth == controlplane.AuthUnauthenticated {
		return controlplane.ProofUnproven
	}
	return string(r.Auth)
}
