package images

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// BinaryDirs are the folders of an image searched for a component's
// binary, in order; "/" is the image's root.
var BinaryDirs = []string{"/app", "/bin", "/usr/bin", "/usr/local/bin", "/"}

// Command is how a process runs an image.
type Command struct {
	// Argv is the program (a host path inside the cache entry) and its
	// arguments.
	Argv []string
	// Dir is the working directory: the image root joined with the
	// image's WorkingDir (the root when it sets none).
	Dir string
	// Env is the image's own environment (NAME=value), which the
	// component's environment overrides.
	Env []string
}

// NoBinaryError says where a binary was looked for and not found.
type NoBinaryError struct {
	Name       string
	Tried      []string
	Entrypoint []string
	Cmd        []string
}

func (e *NoBinaryError) Error() string {
	return fmt.Sprintf("the image has no executable %q at %s, and no entrypoint or cmd (entrypoint %q, cmd %q)",
		e.Name, strings.Join(e.Tried, ", "), e.Entrypoint, e.Cmd)
}

// CommandFor finds how to run img as the component named name (its type
// without "@version", else its id): the first executable file called name
// in BinaryDirs, run with args; else the image's entrypoint and cmd (args
// replacing cmd when given).
func CommandFor(img *Image, name string, args []string) (*Command, error) {
	cmd := &Command{Env: img.Config.Env}
	wd, err := resolve(img.Root, strings.TrimPrefix(img.Config.WorkingDir, "/"), false)
	if err != nil {
		return nil, fmt.Errorf("working directory %q: %w", img.Config.WorkingDir, err)
	}
	cmd.Dir = wd
	tried := make([]string, 0, len(BinaryDirs))
	if name != "" && !strings.ContainsAny(name, "/\x00") && name != "." && name != ".." {
		for _, d := range BinaryDirs {
			p := path.Join(d, name)
			tried = append(tried, p)
			if host, ok := executable(img.Root, p); ok {
				cmd.Argv = append([]string{host}, args...)
				return cmd, nil
			}
		}
	}
	argv := append(append([]string(nil), img.Config.Entrypoint...), img.Config.Cmd...)
	if len(args) > 0 {
		argv = append(append([]string(nil), img.Config.Entrypoint...), args...)
	}
	if len(argv) == 0 {
		return nil, &NoBinaryError{Name: name, Tried: tried, Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd}
	}
	host, err := imageProgram(img, argv[0])
	if err != nil {
		return nil, err
	}
	argv[0] = host
	cmd.Argv = argv
	return cmd, nil
}

// imageProgram finds an entrypoint's program inside the image: an absolute
// path under the root, a bare name on the image's PATH.
func imageProgram(img *Image, prog string) (string, error) {
	candidates := []string{prog}
	if !strings.Contains(prog, "/") {
		candidates = nil
		for _, d := range strings.Split(imagePath(img.Config.Env), ":") {
			if d != "" {
				candidates = append(candidates, path.Join(d, prog))
			}
		}
	} else if !path.IsAbs(prog) {
		candidates = []string{path.Join("/", img.Config.WorkingDir, prog)}
	}
	for _, c := range candidates {
		if host, ok := executable(img.Root, c); ok {
			return host, nil
		}
	}
	return "", fmt.Errorf("the image's entrypoint %q is not an executable file of the image (looked at %s)", prog, strings.Join(candidates, ", "))
}

func imagePath(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			return v
		}
	}
	return "/usr/local/bin:/usr/bin:/bin"
}

// executable resolves the image path p under root and reports whether it
// is an executable regular file there.
func executable(root, p string) (string, bool) {
	host, err := resolve(root, strings.TrimPrefix(p, "/"), false)
	if err != nil {
		return "", false
	}
	fi, err := os.Stat(host)
	if errors.Is(err, os.ErrNotExist) || err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return "", false
	}
	return filepath.Clean(host), true
}
