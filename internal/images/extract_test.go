package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
)

// layerTar is an uncompressed layer of files, as ApplyLayer reads it.
func layerTar(t *testing.T, files ...registrytest.File) *bytes.Reader {
	t.Helper()
	rc, err := registrytest.Layer(t, files...).Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func TestApplyLayerRefusesUnsafeEntriesNamingThem(t *testing.T) {
	cases := []struct {
		name  string
		files []registrytest.File
		entry string
		why   string
	}{
		{"dot-dot", []registrytest.File{{Path: "../outside", Data: []byte("x")}}, "../outside", ".."},
		{"absolute path", []registrytest.File{{Path: "/etc/passwd", Data: []byte("x")}}, "/etc/passwd", "absolute"},
		{"absolute symlink", []registrytest.File{{Path: "app/cfg", Type: tar.TypeSymlink, Linkname: "/etc/shadow"}}, "app/cfg", "absolute"},
		{"relative symlink out", []registrytest.File{{Path: "app/cfg", Type: tar.TypeSymlink, Linkname: "../../etc"}}, "app/cfg", "out of"},
		{"write through a link out", []registrytest.File{
			{Path: "deep/deeper/", Type: tar.TypeDir, Mode: 0o755},
			{Path: "deep/deeper/up", Type: tar.TypeSymlink, Linkname: "../.."},
			{Path: "sneaky", Type: tar.TypeSymlink, Linkname: "deep/deeper/up/.."},
		}, "sneaky", "out of"},
		{"hard link out", []registrytest.File{{Path: "app/pw", Type: tar.TypeLink, Linkname: "../etc/passwd"}}, "app/pw", "hard link"},
		{"device", []registrytest.File{{Path: "dev/sda", Type: tar.TypeBlock}}, "dev/sda", "device"},
		{"char device", []registrytest.File{{Path: "dev/null", Type: tar.TypeChar}}, "dev/null", "device"},
		{"setuid", []registrytest.File{{Path: "bin/su", Mode: 0o4755, Data: []byte("x")}}, "bin/su", "setuid"},
		{"setgid", []registrytest.File{{Path: "bin/sg", Mode: 0o2755, Data: []byte("x")}}, "bin/sg", "setgid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "a", "rootfs")
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := images.ApplyLayer(context.Background(), root, layerTar(t, tc.files...))
			var re *images.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("want a refusal, got %v", err)
			}
			if re.Entry != tc.entry || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("refusal %q: want entry %q and %q", err, tc.entry, tc.why)
			}
			for _, p := range []string{"outside", "etc", "a/etc"} {
				if _, err := os.Lstat(filepath.Join(base, p)); err == nil {
					t.Fatalf("%s was written outside the root", p)
				}
			}
		})
	}
}

func TestApplyLayerWhiteoutsRemoveLowerLayerFiles(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	lower := layerTar(t,
		registrytest.File{Path: "etc/a", Data: []byte("a")},
		registrytest.File{Path: "etc/b", Data: []byte("b")},
		registrytest.File{Path: "opt/old1", Data: []byte("1")},
		registrytest.File{Path: "opt/old2", Data: []byte("2")},
	)
	if _, err := images.ApplyLayer(ctx, root, lower); err != nil {
		t.Fatal(err)
	}
	upper := layerTar(t,
		registrytest.File{Path: "etc/.wh.a", Data: nil},
		registrytest.File{Path: "opt/new", Data: []byte("n")},
		registrytest.File{Path: "opt/.wh..wh..opq", Data: nil},
	)
	if _, err := images.ApplyLayer(ctx, root, upper); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"etc/a": false, "etc/b": true, "opt/old1": false, "opt/old2": false, "opt/new": true}
	for p, present := range want {
		_, err := os.Stat(filepath.Join(root, p))
		if (err == nil) != present {
			t.Errorf("%s present=%v, want %v", p, err == nil, present)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc", ".wh.a")); err == nil {
		t.Error("the whiteout marker itself was extracted")
	}
}

func TestApplyLayerFollowsLinksThatStayInside(t *testing.T) {
	root := t.TempDir()
	l := layerTar(t,
		registrytest.File{Path: "usr/lib/", Type: tar.TypeDir, Mode: 0o755},
		registrytest.File{Path: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"},
		registrytest.File{Path: "lib/libx.so", Data: []byte("x")},
		registrytest.File{Path: "usr/lib/liby.so", Data: []byte("y")},
		registrytest.File{Path: "usr/lib/libz.so", Type: tar.TypeLink, Linkname: "usr/lib/liby.so"},
	)
	if _, err := images.ApplyLayer(context.Background(), root, l); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"usr/lib/libx.so", "usr/lib/libz.so"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
