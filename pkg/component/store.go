package component

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultStateDir is where components keep their state when
// FLOWCTL_STATE_DIR is unset, relative to the working directory (the
// pipeline's folder under the process executor).
const DefaultStateDir = ".flowctl/component-state"

// State is what a Store holds under one key.
type State struct {
	// Values is the map last saved under the key (nil when never saved).
	Values map[string]string
	// ResumeToken is Values[ResumeTokenKey]: the position a consumer
	// committed.
	ResumeToken string
	// Updated is when the key was last saved (zero when never saved).
	Updated time.Time
}

// Store keeps a component's state in one JSON file: a map of string values
// per key, and when each key was saved. It is what SourceService.GetState
// and SaveState read and write, and a component may use it for state of
// its own.
//
// Invariant: the file always holds a complete state. Every Save rewrites it
// through a temporary file that is synced and renamed into place, so a
// crash leaves the previous state or the new one, never a torn file. A
// Store is safe for concurrent use; two Stores must not share a file.
type Store struct {
	path string

	mu   sync.Mutex
	keys map[string]storedState
}

// storeFile is the file's format.
type storeFile struct {
	Version int                    `json:"version"`
	Keys    map[string]storedState `json:"keys"`
}

type storedState struct {
	Values      map[string]string `json:"values"`
	UpdatedUnix int64             `json:"updated_unix_nano"`
}

// StatePath is the file a component's Store uses: <dir>/<name>.json, where
// dir is cfg.StateDir (DefaultStateDir when empty) and name is cfg.ID, else
// fallback, with characters unsafe in a file name replaced by "_".
func StatePath(cfg Config, fallback string) string {
	dir := cfg.StateDir
	if dir == "" {
		dir = DefaultStateDir
	}
	name := cfg.ID
	if name == "" {
		name = fallback
	}
	if name == "" {
		name = "component"
	}
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
	return filepath.Join(dir, safe+".json")
}

// OpenStore opens the state file at path, creating its folder (0700) when
// missing. A missing file is an empty state; the file is written (0600) on
// the first Save.
func OpenStore(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("component: state folder: %w", err)
	}
	s := &Store{path: path, keys: map[string]storedState{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("component: read state: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("component: state file %s: %w", path, err)
	}
	if f.Keys != nil {
		s.keys = f.Keys
	}
	return s, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// Get returns the state saved under key (the zero State when none was).
func (s *Store) Get(key string) State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.keys[key]
	if !ok {
		return State{}
	}
	return State{
		Values:      maps.Clone(st.Values),
		ResumeToken: st.Values[ResumeTokenKey],
		Updated:     time.Unix(0, st.UpdatedUnix),
	}
}

// Save replaces the state under key with values and writes the file before
// it returns.
func (s *Store) Save(key string, values map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, had := s.keys[key]
	s.keys[key] = storedState{Values: maps.Clone(values), UpdatedUnix: time.Now().UnixNano()}
	if err := s.write(); err != nil {
		if had {
			s.keys[key] = prev
		} else {
			delete(s.keys, key)
		}
		return err
	}
	return nil
}

// write replaces the file with the current keys; s.mu is held.
func (s *Store) write() error {
	b, err := json.MarshalIndent(storeFile{Version: 1, Keys: s.keys}, "", "  ")
	if err != nil {
		return fmt.Errorf("component: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("component: write state: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("component: write state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("component: sync state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("component: write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("component: write state: %w", err)
	}
	return nil
}
