package images_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
)

func TestVerifySignatures(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	s := images.New(t.TempDir())
	key := registrytest.NewKey(t)
	pub, err := images.ParsePublicKey(key.PublicPEM)
	if err != nil {
		t.Fatal(err)
	}
	push := func(repo string) (string, string) {
		img := registrytest.Image(t, v1.Config{}, registrytest.Layer(t, registrytest.File{Path: "app/" + repo, Mode: 0o755, Data: []byte(repo)}))
		_, d := reg.Push(t, "signed/"+repo, "v1", img)
		return reg.Host + "/signed/" + repo, d
	}

	t.Run("signed by the key", func(t *testing.T) {
		repo, d := push("good")
		reg.Sign(t, key, repo, d)
		if err := s.Verify(ctx, repo, d, pub); err != nil {
			t.Fatalf("a good signature is refused: %v", err)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		repo, d := push("unsigned")
		err := s.Verify(ctx, repo, d, pub)
		var se *images.SignatureError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "unsigned") || !strings.Contains(err.Error(), images.SignatureTag(d)) {
			t.Fatalf("want unsigned naming the signature tag, got %v", err)
		}
	})
	t.Run("another key", func(t *testing.T) {
		repo, d := push("otherkey")
		reg.Sign(t, registrytest.NewKey(t), repo, d)
		err := s.Verify(ctx, repo, d, pub)
		if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), pub.Fingerprint) {
			t.Fatalf("want a refusal naming the key, got %v", err)
		}
	})
	t.Run("tampered payload", func(t *testing.T) {
		repo, d := push("tampered")
		body := registrytest.Payload(t, repo, d)
		sig := key.SignPayload(t, body)
		tampered := []byte(strings.Replace(string(body), `"optional":null`, `"optional":{"x":"y"}`, 1))
		if string(tampered) == string(body) {
			t.Fatalf("payload %s: nothing tampered", body)
		}
		reg.PutSignature(t, repo, d, tampered, sig)
		if err := s.Verify(ctx, repo, d, pub); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("want a tampered payload refused, got %v", err)
		}
	})
	t.Run("signature of another image", func(t *testing.T) {
		repo, d := push("swapped")
		_, other := push("donor")
		body := registrytest.Payload(t, repo, other)
		reg.PutSignature(t, repo, d, body, key.SignPayload(t, body))
		if err := s.Verify(ctx, repo, d, pub); err == nil || !strings.Contains(err.Error(), "another image") {
			t.Fatalf("want a signature for another digest refused, got %v", err)
		}
	})
}
