// Package execpath resolves the program a component or an exec probe names
// to the file that will be executed, the same way for every caller:
//
//   - a name containing a slash ("./bin/x", "/usr/bin/x", "bin/x") is a path;
//     a relative one resolves against the working directory given (the
//     pipeline file's folder), not against the CLI's current directory;
//   - a bare name ("python3") is looked up on PATH: the PATH of the
//     environment the program will get when it has one, else the CLI's own.
//
// The error names the command and says why it cannot run.
package execpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotFound is wrapped by Resolve when a bare name is on no PATH entry.
var ErrNotFound = exec.ErrNotFound

// Resolve returns the absolute path of the executable that name refers to.
// dir is the working directory the program will run in; env is its
// environment ("K=V" entries; nil means the CLI's own).
func Resolve(name, dir string, env []string) (string, error) {
	if name == "" {
		return "", errors.New("empty command")
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			if p != name {
				return "", fmt.Errorf("command %q (%s): %w", name, p, err)
			}
			return "", fmt.Errorf("command %q: %w", name, err)
		}
		return absolute(p), nil
	}
	path, ok := Lookup(env, "PATH")
	if !ok {
		path = os.Getenv("PATH")
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			continue
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return absolute(p), nil
		}
	}
	return "", fmt.Errorf("command %q: %w (PATH=%s)", name, ErrNotFound, path)
}

// Lookup returns the value of the last key=... entry of env.
func Lookup(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// WithPath returns env with the CLI's PATH appended when env has none, so
// that a program started with an otherwise exact environment still finds
// the usual tools.
func WithPath(env []string) []string {
	if _, ok := Lookup(env, "PATH"); ok {
		return env
	}
	p, ok := os.LookupEnv("PATH")
	if !ok {
		return env
	}
	out := make([]string, 0, len(env)+1)
	out = append(out, env...)
	return append(out, "PATH="+p)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

func absolute(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
