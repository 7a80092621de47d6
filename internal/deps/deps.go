//go:build deps

// Package deps pins, for the work under way, the modules round 2 brings in
// before code imports them (go mod tidy keeps what a build-tagged file
// imports). Removed once each is imported for real.
package deps

import (
	_ "github.com/google/go-containerregistry/pkg/v1/daemon"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/sigstore/sigstore/pkg/signature"
	_ "github.com/sigstore/sigstore/pkg/signature/payload"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/tools/clientcmd"
	_ "k8s.io/client-go/applyconfigurations/apps/v1"
	_ "k8s.io/client-go/dynamic"
)
