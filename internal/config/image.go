package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Image references, read the way the Docker engine reads them: the first
// path component is a registry host when it contains "." or ":" or is
// "localhost"; otherwise the image is on Docker Hub (docker.io), where a
// bare name lives under "library/". A reference may end in ":tag", in
// "@sha256:<64 hex>", or in both.

// DockerHub is the registry host of an image reference that names none.
const DockerHub = "docker.io"

var (
	sha256Digest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	hex64        = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ImageRef is a parsed image reference.
type ImageRef struct {
	// Registry is the host ("docker.io", "ghcr.io", "localhost:5000").
	Registry string
	// Repository is the path under the registry ("library/alpine").
	Repository string
	Tag        string
	// Digest is "sha256:<hex>" when the reference pins one.
	Digest string
}

// Name is registry/repository, the form trusted_registries match.
func (r ImageRef) Name() string { return r.Registry + "/" + r.Repository }

// ParseImageRef splits an image reference; it checks the form only as far
// as flowctl relies on it (the engine checks the rest).
func ParseImageRef(s string) (ImageRef, error) {
	var r ImageRef
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\n") {
		return r, fmt.Errorf("%q is not an image reference", s)
	}
	name := s
	if at := strings.IndexByte(s, '@'); at >= 0 {
		name, r.Digest = s[:at], s[at+1:]
		if !sha256Digest.MatchString(r.Digest) {
			return r, fmt.Errorf("image %q: the digest must be sha256:<64 lower-case hex digits>", s)
		}
	}
	// A tag follows the last ":" after the last "/" (a registry port
	// comes before a "/").
	if c := strings.LastIndexByte(name, ':'); c > strings.LastIndexByte(name, '/') {
		name, r.Tag = name[:c], name[c+1:]
		if r.Tag == "" {
			return r, fmt.Errorf("image %q: empty tag", s)
		}
	}
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return r, fmt.Errorf("image %q: invalid repository name", s)
	}
	r.Registry, r.Repository = splitRegistry(name)
	return r, nil
}

// splitRegistry separates the registry host from a repository name.
func splitRegistry(name string) (registry, repo string) {
	first, rest, found := strings.Cut(name, "/")
	if found && isRegistryHost(first) {
		if first == "index.docker.io" {
			first = DockerHub
		}
		return first, rest
	}
	if !found {
		return DockerHub, "library/" + name
	}
	return DockerHub, name
}

func isRegistryHost(s string) bool { return strings.ContainsAny(s, ".:") || s == "localhost" }

// normalizeTrusted puts one trusted_registries entry in the form image
// names are compared in: "ghcr.io", "ghcr.io/org", "docker.io/withobsrvr"
// (a bare "withobsrvr" is a Docker Hub namespace).
func normalizeTrusted(entry string) string {
	e := strings.TrimSuffix(strings.TrimSpace(entry), "/")
	if e == "" {
		return ""
	}
	if !strings.Contains(e, "/") {
		if !isRegistryHost(e) {
			// "withobsrvr": a Docker Hub namespace, not the library
			// image of that name.
			return DockerHub + "/" + e
		}
		if e == "index.docker.io" {
			return DockerHub
		}
		return e
	}
	reg, repo := splitRegistry(e)
	return reg + "/" + repo
}

// TrustedBy reports whether the image comes from one of the trusted
// registries (as normalised: a host, or a repository prefix).
func (r ImageRef) TrustedBy(trusted []string) bool {
	for _, t := range trusted {
		if t == r.Registry || strings.HasPrefix(r.Name(), t+"/") || t == r.Name() {
			return true
		}
	}
	return false
}

// normalizeImageID gives an image ID its "sha256:" prefix and lower case.
func normalizeImageID(id string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	if hex64.MatchString(id) {
		return "sha256:" + id
	}
	return id
}
