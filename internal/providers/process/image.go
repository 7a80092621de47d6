//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/providers"
)

// Components given an image (or a registry type, name@version) and no
// command run from the image's files: at plan time ResolveImages pins the
// image to a digest and verifies its signature when image_policy asks;
// Preflight pulls and extracts it into the image cache (package images)
// and finds its binary before the apply changes anything; Start runs that
// binary under the shim like any command, in the image's working
// directory, with the image's Env beneath the component's environment.

var (
	_ providers.ImageResolver = (*Provider)(nil)
	_ providers.Preflighter   = (*Provider)(nil)
)

// imageCache opens the user's image cache once per provider, so that its
// engine connection is shared by every start (the restart watcher's too).
type imageCache struct {
	once  sync.Once
	store *images.Store
	err   error
}

// imageStore is the image cache: Options.Images, else the user's (see
// images.DefaultDir), able to take images from a local Docker engine.
func (p *Provider) imageStore() (*images.Store, error) {
	if p.opts.Images != nil {
		return p.opts.Images, nil
	}
	c := &p.images
	c.once.Do(func() {
		dir, err := images.DefaultDir()
		if err != nil {
			c.err = err
			return
		}
		c.store = images.New(dir, images.WithEngine(&images.DockerEngine{}))
	})
	return c.store, c.err
}

// ResolveImages implements providers.ImageResolver.
func (p *Provider) ResolveImages(ctx context.Context, dir string, comps []*config.Component) error {
	var store *images.Store
	return eachImage(comps, func(c *config.Component) error {
		if store == nil {
			s, err := p.imageStore()
			if err != nil {
				return err
			}
			store = s
		}
		return resolveImage(ctx, store, dir, c)
	})
}

// resolveImage pins c's image and verifies its signature when its policy
// asks.
func resolveImage(ctx context.Context, store *images.Store, dir string, c *config.Component) error {
	r, err := store.Resolve(ctx, c.Image, c.PullPolicy())
	if err != nil {
		return fmt.Errorf("%s: %w", c.Address(), err)
	}
	c.ImageDigest, c.ImageSignedBy = r.Digest, ""
	if pol := c.SignaturePolicy(); pol != nil {
		key := pol.PublicKey
		if !filepath.IsAbs(key) {
			key = filepath.Join(dir, key)
		}
		fp, err := store.VerifyWithKeyFile(ctx, r.Repository, r.Digest, key)
		if err != nil {
			return fmt.Errorf("%s: refused: %w", c.Address(), err)
		}
		c.ImageSignedBy = fp
	}
	return nil
}

// Preflight implements providers.Preflighter: every image is in the cache
// (pulled and extracted now if need be) and holds the binary to run.
func (p *Provider) Preflight(ctx context.Context, comps []*config.Component) error {
	var store *images.Store
	return eachImage(comps, func(c *config.Component) error {
		if store == nil {
			s, err := p.imageStore()
			if err != nil {
				return err
			}
			store = s
		}
		_, err := imageCommand(ctx, store, c)
		return err
	})
}

// eachImage calls fn for each component that runs an image, and reports
// every failure at once, sorted.
func eachImage(comps []*config.Component, fn func(*config.Component) error) error {
	var msgs []string
	for _, c := range comps {
		if !c.RunsImageAsProcess() {
			continue
		}
		if err := fn(c); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	sort.Strings(msgs)
	return errors.New(strings.Join(msgs, "\n"))
}

// imageCommand ensures c's image is in the cache and finds how to run it.
func imageCommand(ctx context.Context, store *images.Store, c *config.Component) (*images.Command, error) {
	digest := c.ImageDigest
	if digest == "" {
		// Planned without an image resolver (a component handed to Start
		// directly): resolve now.
		r, err := store.Resolve(ctx, c.Image, c.PullPolicy())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Address(), err)
		}
		digest = r.Digest
	}
	img, err := store.Ensure(ctx, c.Image, digest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Address(), err)
	}
	cmd, err := images.CommandFor(img, binaryName(c), c.Args)
	if err != nil {
		return nil, fmt.Errorf("%s: image %s@%s: %w", c.Address(), c.Image, digest, err)
	}
	return cmd, nil
}

// binaryName is the name of the binary an image's component runs: its
// type without "@version", else its id.
func binaryName(c *config.Component) string {
	name, _, _ := strings.Cut(c.Type, "@")
	if name == "" || config.ValidKind(name) {
		return c.ID
	}
	return name
}

// imageSpec returns spec with the component's image turned into a
// command: the binary found in the extracted image, its working
// directory, and the image's environment beneath the component's.
func (p *Provider) imageSpec(ctx context.Context, spec *providers.ComponentSpec) (*providers.ComponentSpec, error) {
	store, err := p.imageStore()
	if err != nil {
		return nil, err
	}
	cmd, err := imageCommand(ctx, store, spec.Component)
	if err != nil {
		return nil, err
	}
	c := *spec.Component
	c.Command, c.Args = cmd.Argv, nil
	out := *spec
	out.Component = &c
	out.WorkDir = cmd.Dir
	out.Env = make(map[string]string, len(spec.Env)+len(cmd.Env))
	for _, kv := range cmd.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			out.Env[k] = v
		}
	}
	for k, v := range spec.Env {
		out.Env[k] = v
	}
	return &out, nil
}
