package component_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowctl/flowctl/pkg/component"
)

func TestStoreKeepsEachKeyAcrossReopening(t *testing.T) {
	path := component.StatePath(component.Config{ID: "source.counter", StateDir: t.TempDir()}, "")
	if filepath.Base(path) != "source.counter.json" {
		t.Fatalf("state path %s", path)
	}
	s, err := component.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Get(""); got.Values != nil || got.ResumeToken != "" || !got.Updated.IsZero() {
		t.Fatalf("empty store: %+v", got)
	}
	if err := s.Save("", map[string]string{component.ResumeTokenKey: "7", "a": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("other", map[string]string{"b": "2"}); err != nil {
		t.Fatal(err)
	}
	// Save replaces a key's map.
	if err := s.Save("", map[string]string{component.ResumeTokenKey: "9"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}

	again, err := component.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	def := again.Get("")
	if def.ResumeToken != "9" || len(def.Values) != 1 || def.Updated.IsZero() {
		t.Fatalf("default key after reopening: %+v", def)
	}
	if other := again.Get("other"); other.Values["b"] != "2" || other.ResumeToken != "" {
		t.Fatalf("other key after reopening: %+v", other)
	}
	// What Get returns is a copy.
	def.Values["x"] = "y"
	if _, ok := again.Get("").Values["x"]; ok {
		t.Fatal("Get shares its map with the store")
	}
}

func TestStoreRefusesACorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := component.OpenStore(path); err == nil {
		t.Fatal("a corrupt state file opened")
	}
}

func TestRunClosesWhenItsContextEnds(t *testing.T) {
	c, err := component.New(component.Config{ID: "sink"}, component.Info{}, component.WithSink(&collector{}), component.WithInsecureDataPlane())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
