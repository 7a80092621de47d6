package providers

import (
	"context"

	"github.com/flowctl/flowctl/internal/config"
)

// ImageResolver is implemented by providers that pin a component's image
// when a plan is made: each component of theirs that runs an image is
// resolved to a digest (by its pull policy), its signature is verified
// when its image_policy requires one, and both are recorded in the
// component (config.Component.ImageDigest and ImageSignedBy) so that its
// spec hash names the image itself and a moved tag shows as a change. dir
// is the pipeline file's folder, where relative public keys are found. An
// error (a registry that cannot be reached, a missing or bad signature)
// stops the plan before anything changes.
type ImageResolver interface {
	ResolveImages(ctx context.Context, dir string, components []*config.Component) error
}
