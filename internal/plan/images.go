package plan

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
)

// ReasonImageTagMoved marks the drift of a component whose image tag now
// names another digest than the one its instance runs.
const ReasonImageTagMoved Reason = "image_tag_moved"

// resolveImages lets every provider that pins images
// (providers.ImageResolver) resolve the desired components it runs, so
// that their specs, and hashes, name image digests.
func resolveImages(ctx context.Context, in Input) error {
	if in.Desired == nil || in.Providers == nil {
		return nil
	}
	byExecutor := map[string][]*config.Component{}
	for _, c := range in.Desired.Components {
		byExecutor[c.Executor] = append(byExecutor[c.Executor], c)
	}
	dir := "."
	if in.Desired.File != "" {
		dir = filepath.Dir(in.Desired.File)
	}
	for _, name := range sortedKeys(byExecutor) {
		prov, err := in.Providers.Get(name)
		if err != nil {
			continue // Observe reports an executor that is not there
		}
		if r, ok := prov.(providers.ImageResolver); ok {
			if err := r.ResolveImages(ctx, dir, byExecutor[name]); err != nil {
				return err
			}
		}
	}
	return nil
}

// imageTagMoved is the drift of a change whose image reference stayed
// and whose digest changed: the tag was moved in the registry.
func imageTagMoved(ch *Change) *Drift {
	var digest *AttrChange
	for i := range ch.Attrs {
		switch a := &ch.Attrs[i]; a.Path {
		case "image", "type":
			return nil // the file names another image: not drift
		case "image_digest":
			digest = a
		}
	}
	if digest == nil || !digest.HasOld || !digest.HasNew {
		return nil
	}
	return &Drift{Address: ch.Address, Reason: ReasonImageTagMoved,
		Detail: fmt.Sprintf("image tag moved: %s → %s", shortDigest(digest.Old), shortDigest(digest.New))}
}

// shortDigest is "sha256:" and the first 12 hex digits, then "…".
func shortDigest(d string) string {
	d = strings.Trim(d, `"`)
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12] + "…"
	}
	return d
}

// keepResolvedImages copies the image digests and signature keys the plan
// resolved (which no file states) onto the pipeline read again from its
// file.
func keepResolvedImages(saved, reloaded *config.Pipeline) {
	for _, c := range reloaded.Components {
		if s := saved.Component(c.Address()); s != nil {
			c.ImageDigest, c.ImageSignedBy = s.ImageDigest, s.ImageSignedBy
		}
	}
}
