package docker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/providers"
)

// Signed images: a component whose image_policy requires a signature is
// pinned when the plan is made. The image is made present on the engine
// (as its pull policy says), its registry digest read from the engine
// (RepoDigests), and the cosign signature of that digest verified in the
// registry with the policy's public key (images.Store.Verify). The digest
// and the key's fingerprint become part of the component's spec; the
// container is then created from exactly that image (checkImage).
// Components without such a policy are not pinned, so their spec hashes
// are what they were before signatures existed.

var _ providers.ImageResolver = (*Provider)(nil)

// ResolveImages implements providers.ImageResolver.
func (p *Provider) ResolveImages(ctx context.Context, dir string, comps []*config.Component) error {
	var signed []*config.Component
	for _, c := range comps {
		if c.SignaturePolicy() != nil && c.Image != "" {
			signed = append(signed, c)
		}
	}
	if len(signed) == 0 {
		return nil
	}
	cli, err := p.api(ctx)
	if err != nil {
		return err
	}
	cacheDir, err := images.DefaultDir()
	if err != nil {
		return err
	}
	store := images.New(cacheDir)
	var msgs []string
	for _, c := range signed {
		if err := p.verifyImage(ctx, cli, store, dir, c); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	sort.Strings(msgs)
	return errors.New(strings.Join(msgs, "\n"))
}

// verifyImage pins c's image to the registry digest the engine has and
// verifies its signature.
func (p *Provider) verifyImage(ctx context.Context, cli *client.Client, store *images.Store, dir string, c *config.Component) error {
	pinned := *c
	pinned.ImageDigest = "" // make present as the pull policy says, unpinned
	if _, err := p.ensureImage(ctx, cli, &pinned); err != nil {
		return err
	}
	ins, err := cli.ImageInspect(ctx, c.Image)
	if err != nil {
		return fmt.Errorf("%s: inspect image %q: %w", c.Address(), c.Image, err)
	}
	digest := registryDigest(c.Image, ins.RepoDigests)
	if digest == "" {
		return fmt.Errorf("%s: refused: image %q has no registry digest on the Docker engine (it was built or loaded here, never pulled), and a signature names a registry digest", c.Address(), c.Image)
	}
	key := c.SignaturePolicy().PublicKey
	if !filepath.IsAbs(key) {
		key = filepath.Join(dir, key)
	}
	ref, err := name.ParseReference(c.Image)
	if err != nil {
		return fmt.Errorf("%s: image %q: %w", c.Address(), c.Image, err)
	}
	fp, err := store.VerifyWithKeyFile(ctx, ref.Context().Name(), digest, key)
	if err != nil {
		return fmt.Errorf("%s: refused: %w", c.Address(), err)
	}
	c.ImageDigest, c.ImageSignedBy = digest, fp
	return nil
}

// registryDigest is the digest among the engine's RepoDigests of the
// image that belongs to ref's repository, or "".
func registryDigest(ref string, repoDigests []string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	return images.RepoDigestFor(r, repoDigests)
}

func orNone(s string) string {
	if s == "" {
		return "without a registry digest"
	}
	return s
}
