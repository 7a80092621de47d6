package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sys/unix"
)

// HostFolder is a bind mount's host folder that does not exist yet and
// that an apply creates (0755) before it starts any component, as Compose
// does. Path is host_path as written, cleaned: relative to the pipeline
// file's folder unless absolute.
type HostFolder struct {
	Path       string   `json:"path"`
	Components []string `json:"components"`
}

// MissingHostFolders checks the bind mounts of comps, whose host paths are
// on this machine, against the file system under dir (the pipeline file's
// folder). It returns the folders to create, sorted by path, and an error
// diagnostic at host_path for each that cannot be created: a path under a
// regular file, or a folder flowctl may not write to. A host path that
// exists, folder or file, needs nothing.
func MissingHostFolders(dir string, comps []*Component) ([]HostFolder, hcl.Diagnostics) {
	var (
		out   []HostFolder
		diags hcl.Diagnostics
	)
	byPath := map[string]int{}
	for _, c := range comps {
		for i, v := range c.Volumes {
			if v.HostPath == "" {
				continue
			}
			p := filepath.Clean(v.HostPath)
			abs := p
			if !filepath.IsAbs(abs) {
				abs = filepath.Join(dir, p)
			}
			if _, err := os.Stat(abs); err == nil {
				continue
			}
			if err := creatable(abs); err != nil {
				diags = append(diags, compErr(c, fmt.Sprintf("volumes.%d.host_path", i), "Cannot create host folder",
					"volume %d: host_path %q does not exist and cannot be created: %v", i, v.HostPath, err))
				continue
			}
			if j, ok := byPath[p]; ok {
				if !slices.Contains(out[j].Components, c.Address()) {
					out[j].Components = append(out[j].Components, c.Address())
				}
				continue
			}
			byPath[p] = len(out)
			out = append(out, HostFolder{Path: p, Components: []string{c.Address()}})
		}
	}
	slices.SortFunc(out, func(a, b HostFolder) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	return out, diags
}

// creatable tells why the missing folder abs cannot be made: its nearest
// existing ancestor must be a folder this process may write to.
func creatable(abs string) error {
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
			if dir == filepath.Dir(dir) {
				return fmt.Errorf("%s does not exist", dir)
			}
			continue
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("%s is a file, not a folder", dir)
		}
		if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
			return fmt.Errorf("no permission to create a folder in %s", dir)
		}
		return nil
	}
}

// CreateHostFolders makes the folders (0755, with their parents) under dir.
func CreateHostFolders(dir string, folders []HostFolder) error {
	for _, f := range folders {
		p := f.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("create host folder %s (a volume of %s): %w", f.Path, f.Components[0], err)
		}
	}
	return nil
}
