package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RefusedError names a layer entry extraction refused, and why.
type RefusedError struct {
	Entry  string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("layer entry %q refused: %s", e.Entry, e.Reason)
}

// errEscape marks a path that resolves outside the root.
var errEscape = errors.New("leads out of the image's root")

// maxLinkHops bounds the symbolic links followed while resolving one path.
const maxLinkHops = 40

// extractEntry extracts img into a new cache entry named digest and
// returns it. The entry appears whole or not at all.
func (s *Store) extractEntry(ctx context.Context, img v1.Image, digest, source, ref string) (*Image, error) {
	final, err := s.entryDir(digest)
	if err != nil {
		return nil, err
	}
	tmpBase := filepath.Join(s.dir, "tmp")
	if err := os.MkdirAll(tmpBase, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(tmpBase, "extract-")
	if err != nil {
		return nil, err
	}
	defer removeAll(tmp) // a no-op once renamed
	entry, err := extractImage(ctx, img, filepath.Join(tmp, "rootfs"))
	if err != nil {
		return nil, err
	}
	entry.Digest, entry.Source, entry.References, entry.Extracted = digest, source, []string{ref}, time.Now().UTC()
	b, _ := json.MarshalIndent(entry, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "image.json"), b, 0o600); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another process made the same entry meanwhile: use it.
		if existing, rerr := readEntry(final); rerr == nil {
			return existing, nil
		}
		return nil, fmt.Errorf("put cache entry in place: %w", err)
	}
	entry.Root = filepath.Join(final, "rootfs")
	return entry, nil
}

// extractImage applies img's layers in order under root and returns what
// the entry records of it.
func extractImage(ctx context.Context, img v1.Image, root string) (*Image, error) {
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image configuration: %w", err)
	}
	manifest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers: %w", err)
	}
	var size int64
	for i, l := range layers {
		n, err := applyLayerOf(ctx, root, l)
		if err != nil {
			return nil, fmt.Errorf("layer %d of %d: %w", i+1, len(layers), err)
		}
		size += n
	}
	if err := checkLinks(root); err != nil {
		return nil, err
	}
	return &Image{
		Manifest: manifest.String(),
		Size:     size,
		Config: Config{
			Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd,
			Env: cf.Config.Env, WorkingDir: cf.Config.WorkingDir,
		},
	}, nil
}

func applyLayerOf(ctx context.Context, root string, l v1.Layer) (int64, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return ApplyLayer(ctx, root, rc)
}

// ApplyLayer extracts one uncompressed layer tarball over root, applying
// whiteouts and refusing unsafe entries (see the package doc). It returns
// the bytes of regular files written.
func ApplyLayer(ctx context.Context, root string, r io.Reader) (int64, error) {
	la := &layerApplier{root: root, written: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return la.size, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return la.size, nil
		}
		if err != nil {
			return la.size, fmt.Errorf("read layer: %w", err)
		}
		if err := la.apply(hdr, tr); err != nil {
			return la.size, err
		}
	}
}

// layerApplier applies the entries of one layer.
type layerApplier struct {
	root string
	// written holds the paths this layer created, which an opaque
	// whiteout in the same layer keeps.
	written map[string]bool
	size    int64
}

func (la *layerApplier) apply(hdr *tar.Header, r io.Reader) error {
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return &RefusedError{Entry: hdr.Name, Reason: err.Error()}
	}
	if rel == "" {
		return nil // the root itself
	}
	refuse := func(reason string) error { return &RefusedError{Entry: hdr.Name, Reason: reason} }
	dirRel, base := path.Split(rel)
	parent, err := resolve(la.root, dirRel, true)
	if err != nil {
		return refuse("its folder " + err.Error())
	}
	switch {
	case base == ".wh..wh..opq":
		return la.opaque(parent, strings.TrimSuffix(dirRel, "/"))
	case strings.HasPrefix(base, ".wh."):
		return removeAll(filepath.Join(parent, strings.TrimPrefix(base, ".wh.")))
	}
	if reason := unsafeHeader(hdr); reason != "" {
		return refuse(reason)
	}
	target := filepath.Join(parent, base)
	if err := la.write(hdr, r, target, dirRel); err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			return err
		}
		if errors.Is(err, errEscape) {
			return refuse(err.Error())
		}
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	la.written[rel] = true
	return nil
}

// unsafeHeader says why an entry's type or mode is refused, or "".
func unsafeHeader(hdr *tar.Header) string {
	switch {
	case hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock:
		return "device nodes are not extracted"
	case hdr.Mode&0o4000 != 0:
		return "the setuid bit is not allowed"
	case hdr.Mode&0o2000 != 0:
		return "the setgid bit is not allowed"
	}
	return ""
}

func (la *layerApplier) write(hdr *tar.Header, r io.Reader, target, dirRel string) error {
	mode := fs.FileMode(hdr.Mode) & 0o777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
			return os.Chmod(target, mode|0o700)
		}
		if err := removeAll(target); err != nil {
			return err
		}
		return os.Mkdir(target, mode|0o700)
	case tar.TypeReg:
		if err := removeAll(target); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode|0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, r)
		la.size += n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return os.Chmod(target, mode|0o400)
	case tar.TypeSymlink:
		if filepath.IsAbs(hdr.Linkname) {
			return &RefusedError{Entry: hdr.Name, Reason: fmt.Sprintf("symbolic link to the absolute path %q: the component runs on the host, where that path is outside the image", hdr.Linkname)}
		}
		if _, err := resolve(la.root, dirRel+hdr.Linkname, false); errors.Is(err, errEscape) {
			return &RefusedError{Entry: hdr.Name, Reason: fmt.Sprintf("symbolic link to %q %v", hdr.Linkname, err)}
		}
		if err := removeAll(target); err != nil {
			return err
		}
		return os.Symlink(hdr.Linkname, target)
	case tar.TypeLink:
		return la.hardLink(hdr, target)
	}
	return nil // FIFOs and extended headers carry nothing a process needs
}

func (la *layerApplier) hardLink(hdr *tar.Header, target string) error {
	refuse := func(reason string) error { return &RefusedError{Entry: hdr.Name, Reason: reason} }
	lrel, err := entryPath(hdr.Linkname)
	if err != nil || lrel == "" {
		return refuse(fmt.Sprintf("hard link to %q, outside the image's root", hdr.Linkname))
	}
	dirRel, base := path.Split(lrel)
	parent, err := resolve(la.root, dirRel, false)
	if err != nil {
		return refuse(fmt.Sprintf("hard link to %q %v", hdr.Linkname, err))
	}
	src := filepath.Join(parent, base)
	fi, err := os.Lstat(src)
	if err != nil || !fi.Mode().IsRegular() {
		return refuse(fmt.Sprintf("hard link to %q, which is not a file of the image", hdr.Linkname))
	}
	if err := removeAll(target); err != nil {
		return err
	}
	return os.Link(src, target)
}

// opaque empties dir of what lower layers put there.
func (la *layerApplier) opaque(dir, dirRel string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		rel := path.Join(dirRel, e.Name())
		if la.written[rel] {
			continue
		}
		if err := removeAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// entryPath cleans a tar entry name into a path relative to the root
// ("" for the root), refusing absolute names and names with "..".
func entryPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", errors.New(`the path climbs out of the image's root with ".."`)
		}
	}
	p := path.Clean(name)
	if p == "." {
		return "", nil
	}
	return p, nil
}

// resolve follows rel under root the way the kernel would, symbolic links
// included, without ever leaving root, and returns the host path. With
// create, missing folders are made. A path that would leave root is
// errEscape.
func resolve(root, rel string, create bool) (string, error) {
	hops := 0
	return resolveFrom(root, nil, rel, create, &hops)
}

func resolveFrom(root string, stack []string, rel string, create bool, hops *int) (string, error) {
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		switch part {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return "", errEscape
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cur := filepath.Join(append([]string{root}, append(stack, part)...)...)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if create {
				if err := os.Mkdir(cur, 0o755); err != nil {
					return "", err
				}
			}
			stack = append(stack, part)
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			*hops++
			if *hops > maxLinkHops {
				return "", fmt.Errorf("too many symbolic links at %s", path.Join(stack...))
			}
			link, err := os.Readlink(cur)
			if err != nil {
				return "", err
			}
			if filepath.IsAbs(link) {
				return "", errEscape
			}
			rest := strings.Join(parts[i+1:], "/")
			return resolveFrom(root, append([]string(nil), stack...), link+"/"+rest, create, hops)
		default:
			stack = append(stack, part)
		}
	}
	return filepath.Join(append([]string{root}, stack...)...), nil
}

// checkLinks refuses a finished tree in which a symbolic link leads out
// of root: a later layer may have changed what an earlier link resolves
// through.
func checkLinks(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		link, err := os.Readlink(p)
		if err != nil {
			return err
		}
		dirRel := path.Dir(filepath.ToSlash(rel))
		if filepath.IsAbs(link) {
			return &RefusedError{Entry: rel, Reason: fmt.Sprintf("symbolic link to the absolute path %q", link)}
		}
		if _, err := resolve(root, dirRel+"/"+link, false); errors.Is(err, errEscape) {
			return &RefusedError{Entry: rel, Reason: fmt.Sprintf("symbolic link to %q %v", link, err)}
		}
		return nil
	})
}
