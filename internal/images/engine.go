package images

import (
	"context"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/moby/moby/client"
)

// Engine is a local Docker engine images can be taken from.
type Engine interface {
	// Lookup returns the digests the engine knows ref by
	// (repository@sha256:… entries) and its image ID; ok is false when it
	// does not have the image or does not answer.
	Lookup(ctx context.Context, ref string) (repoDigests []string, id string, ok bool)
	// Image exports the image ref from the engine.
	Image(ctx context.Context, ref name.Reference) (v1.Image, error)
}

// DockerEngine is the engine DOCKER_HOST (or the default socket) names. It
// connects on first use; without an engine every lookup finds nothing.
type DockerEngine struct {
	once sync.Once
	cli  *client.Client
}

func (e *DockerEngine) client() *client.Client {
	e.once.Do(func() {
		cli, err := client.New(client.FromEnv)
		if err == nil {
			e.cli = cli
		}
	})
	return e.cli
}

// Lookup implements Engine.
func (e *DockerEngine) Lookup(ctx context.Context, ref string) ([]string, string, bool) {
	cli := e.client()
	if cli == nil {
		return nil, "", false
	}
	res, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		return nil, "", false
	}
	return res.RepoDigests, res.ID, true
}

// Image implements Engine.
func (e *DockerEngine) Image(ctx context.Context, ref name.Reference) (v1.Image, error) {
	opts := []daemon.Option{daemon.WithContext(ctx), daemon.WithFileBufferedOpener()}
	if cli := e.client(); cli != nil {
		opts = append(opts, daemon.WithClient(cli))
	}
	return daemon.Image(ref, opts...)
}

// engineDigest is the digest the engine knows r by: its registry digest
// for r's repository when it has one (the digest the registry and a
// signature name), else its image ID.
func (s *Store) engineDigest(ctx context.Context, r name.Reference) (string, bool) {
	if s.engine == nil {
		return "", false
	}
	repoDigests, id, ok := s.engine.Lookup(ctx, r.Name())
	if !ok {
		return "", false
	}
	if d := RepoDigestFor(r, repoDigests); d != "" {
		return d, true
	}
	return id, id != ""
}

// RepoDigestFor is the digest an engine's RepoDigests list ("repo@sha256:…")
// gives for r's repository; "" when none does.
func RepoDigestFor(r name.Reference, repoDigests []string) string {
	for _, rd := range repoDigests {
		repo, digest, ok := strings.Cut(rd, "@")
		if !ok {
			continue
		}
		if pr, err := name.NewRepository(repo); err == nil && pr.Name() == r.Context().Name() {
			return digest
		}
	}
	return ""
}

// engineImage is r as the engine exports it when the engine has r by
// digest; nil otherwise (the registry is asked then).
func (s *Store) engineImage(ctx context.Context, r name.Reference, digest string) v1.Image {
	if s.engine == nil {
		return nil
	}
	repoDigests, id, ok := s.engine.Lookup(ctx, r.Name())
	if !ok || (id != digest && RepoDigestFor(r, repoDigests) != digest) {
		return nil
	}
	img, err := s.engine.Image(ctx, r)
	if err != nil {
		return nil
	}
	return img
}
