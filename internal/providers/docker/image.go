package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/config"
)

// imageEntry serialises the work on one image reference (one pull at a
// time), and remembers its last successful check for a while: an apply's
// Preflight checks every image, and its Starts need not ask again.
type imageEntry struct {
	mu sync.Mutex
	// pulled is when this process last pulled the image: pull = "always"
	// pulls once per imageCheckTTL, not once per container.
	pulled time.Time
	// checked is when the image was last found as component key wants
	// it, and resolved what to create from then.
	checked  time.Time
	key      string
	resolved string
}

// imageCheckTTL is how long a successful image check is trusted.
const imageCheckTTL = time.Minute

func (p *Provider) imageEntry(ref string) *imageEntry {
	e, _ := p.images.LoadOrStore(ref, &imageEntry{})
	return e.(*imageEntry)
}

// ensureImage makes c's image present as its pull policy says, checks its
// pins, and returns what to create the container from: the image ID when
// image_id pins it (so that a tag moved meanwhile cannot slip in), the
// reference otherwise.
func (p *Provider) ensureImage(ctx context.Context, cli *client.Client, c *config.Component) (string, error) {
	ref := c.Image
	if ref == "" {
		return "", fmt.Errorf("%s: the docker executor needs an image (this component has none)", c.Address())
	}
	e := p.imageEntry(ref)
	e.mu.Lock()
	defer e.mu.Unlock()
	key := c.PullPolicy() + "|" + c.ImageID + "|" + c.ImageDigest
	if e.key == key && time.Since(e.checked) < imageCheckTTL {
		return e.resolved, nil
	}
	resolved, err := p.checkImage(ctx, cli, c, e)
	if err != nil {
		return "", err
	}
	e.key, e.checked, e.resolved = key, time.Now(), resolved
	return resolved, nil
}

// checkImage does ensureImage's work, with e locked.
func (p *Provider) checkImage(ctx context.Context, cli *client.Client, c *config.Component, e *imageEntry) (string, error) {
	ref := c.Image
	policy := c.PullPolicy()
	justPulled := time.Since(e.pulled) < imageCheckTTL
	if policy == config.PullAlways && !justPulled {
		if err := pull(ctx, cli, ref); err != nil {
			return "", fmt.Errorf("%s: image %q (pull = %q): %w", c.Address(), ref, policy, err)
		}
		e.pulled, justPulled = time.Now(), true
	}
	ins, err := cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		switch {
		case policy == config.PullNever:
			return "", fmt.Errorf("%s: image %q is not on the Docker engine, and pull = %q forbids pulling it", c.Address(), ref, policy)
		case justPulled:
			return "", fmt.Errorf("%s: image %q is not on the Docker engine though it was just pulled", c.Address(), ref)
		}
		if err := pull(ctx, cli, ref); err != nil {
			return "", fmt.Errorf("%s: image %q is not on the Docker engine and could not be pulled: %w", c.Address(), ref, err)
		}
		e.pulled = time.Now()
		ins, err = cli.ImageInspect(ctx, ref)
	}
	if err != nil {
		return "", fmt.Errorf("%s: inspect image %q: %w", c.Address(), ref, err)
	}
	if c.ImageID != "" {
		if ins.ID != c.ImageID {
			return "", fmt.Errorf("%s: image %q is %s on the Docker engine, but image_id pins %s", c.Address(), ref, ins.ID, c.ImageID)
		}
		return ins.ID, nil
	}
	if c.ImageDigest != "" {
		// The plan verified this digest's signature: run that image and
		// no other, whatever the tag names now.
		if got := registryDigest(ref, ins.RepoDigests); got != c.ImageDigest {
			return "", fmt.Errorf("%s: image %q is %s on the Docker engine, but the plan verified %s; plan again", c.Address(), ref, orNone(got), c.ImageDigest)
		}
		return ins.ID, nil
	}
	return ref, nil
}

// pullMessage is the part of the engine's pull progress stream that matters:
// an error is reported in the stream, not as an HTTP status.
type pullMessage struct {
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// pull pulls ref and waits for the end of the progress stream. Pulls are
// anonymous: an image from a private registry is pulled beforehand (docker
// login, docker pull) and used with pull = "missing" or "never".
func pull(ctx context.Context, cli *client.Client, ref string) error {
	rc, err := cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m pullMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read pull progress: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// Preflight implements providers.Preflighter: the engine answers, and every
// image is present (pulled if its policy allows) and matches its pins. All
// problems are reported at once, components sorted by address.
func (p *Provider) Preflight(ctx context.Context, comps []*config.Component) error {
	if len(comps) == 0 {
		return nil
	}
	cli, err := p.api(ctx)
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 4)
	)
	for _, c := range comps {
		wg.Add(1)
		go func(c *config.Component) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := p.ensureImage(ctx, cli, c); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	sort.Strings(msgs)
	return errors.New(strings.Join(msgs, "\n"))
}
