package images

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// InUse names the cache entries a live process runs a binary of (its
// /proc/PID/exe lies in the entry): what Prune must keep.
func (s *Store) InUse() map[string]bool {
	dir := s.Dir()
	used := map[string]bool{}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // /proc/PID/exe names the real path
	}
	prefix := filepath.Join(dir, "sha256") + string(filepath.Separator)
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
		if err != nil || !strings.HasPrefix(exe, prefix) {
			continue
		}
		digest, _, _ := strings.Cut(strings.TrimPrefix(exe, prefix), string(filepath.Separator))
		used["sha256:"+digest] = true
	}
	return used
}
