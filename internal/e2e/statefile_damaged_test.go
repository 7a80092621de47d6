package e2e

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 13, finding 6: a damaged state file crashed flowctl (panic: invalid
// freelist page, exit 2; a nil-pointer panic for a flipped bit in the root
// bucket) or, for some flipped bits, silently changed the plan. Every
// command must now refuse the file with exit 1 and an error that names it
// and what is wrong, and change nothing; `state restore` puts the backup
// back.

// damagedStateFixture applies enough components for a state file over 40 KB
// and returns the fixture and the file's bytes.
func damagedStateFixture(t *testing.T) (*fixture, []byte) {
	f := newFixture(t)
	var cs []comp
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		cs = append(cs, comp{kind: "source", id: id, env: map[string]string{"TC_PAD": strings.Repeat(id, 1500)}})
	}
	f.writePipeline(cs)
	f.apply()
	// A second apply with a change moves the serial again: the backup
	// then holds the first apply's result.
	cs[0].env["TC_PAD"] = "changed"
	f.writePipeline(cs)
	f.apply()
	good, err := os.ReadFile(f.statePath())
	if err != nil {
		t.Fatal(err)
	}
	if len(good) <= 40_000 {
		t.Fatalf("the state file is %d bytes: too small for the truncations of the issue", len(good))
	}
	return f, good
}

// relState is the state file's path as flowctl names it when run in the
// pipeline's folder.
func (f *fixture) relState() string {
	rel, err := filepath.Rel(f.dir, f.statePath())
	if err != nil {
		f.t.Fatal(err)
	}
	return rel
}

// rootPage is the page of the root bucket named by the state file's newer
// valid meta page (bbolt's layout: page size at 24, root at 32, txid at 64
// of each meta page).
func rootPage(data []byte) int {
	ps := int(binary.LittleEndian.Uint32(data[24:]))
	m := 0
	if binary.LittleEndian.Uint64(data[ps+64:]) > binary.LittleEndian.Uint64(data[64:]) {
		m = ps
	}
	return int(binary.LittleEndian.Uint64(data[m+32:])) * ps
}

func TestDamagedStateFileIsRefusedWithAClearError(t *testing.T) {
	f, good := damagedStateFixture(t)
	root := rootPage(good)
	flip := func(off int, mask byte) []byte {
		b := append([]byte(nil), good...)
		b[off] ^= mask
		return b
	}
	// Old copies of a record stay on freed pages, and which copy comes
	// first in the file depends on bbolt's page reuse: flip a bit in the
	// spec hash of every copy, so the live record is surely among them.
	flipRecords := func() []byte {
		b := append([]byte(nil), good...)
		const key = `"spec_hash":"`
		for i := 0; ; {
			j := strings.Index(string(b[i:]), key)
			if j < 0 {
				return b
			}
			i += j + len(key)
			b[i] ^= 0x01
		}
	}
	cases := []struct {
		name    string
		data    []byte
		problem string
	}{
		{"truncated to 8 KiB", good[:8<<10], "the file is truncated: it is 8192 bytes"},
		{"truncated to 20 KB", good[:20_000], "the file is truncated: it is 20000 bytes"},
		{"truncated to 40 KB", good[:40_000], "the file is truncated: it is 40000 bytes"},
		{"flipped bit in the root bucket's page", flip(root+16+4, 0x01), "bucket"},
		{"flipped bit in the root bucket's page header", flip(root+8, 0x04), "root bucket"},
		{"flipped bit in a component record", flipRecords(), "the checksum of its records does not match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(f.statePath(), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"plan"}, {"status"}, {"state", "list"}, {"history"}, {"apply", "-auto-approve"}, {"destroy", "-auto-approve"}} {
				r := f.run(args...)
				if r.code != 1 || strings.Contains(r.err, "panic") || strings.Contains(r.err, "goroutine ") {
					t.Fatalf("want exit 1 and no panic\n%s", r)
				}
				want := "state file " + f.relState() + " is damaged: "
				if !strings.Contains(r.err, want) || !strings.Contains(r.err, c.problem) {
					t.Fatalf("stderr lacks %q … %q\n%s", want, c.problem, r)
				}
			}
			if now, _ := os.ReadFile(f.statePath()); string(now) != string(c.data) {
				t.Fatal("a command wrote to the damaged file")
			}
		})
	}
	// The backup is the version before the last apply's last write; restore
	// puts it back and the pipeline is whole again.
	r := f.must(0, "state", "restore")
	if !strings.Contains(r.out, "Restored "+f.relState()+" from "+f.relState()+".backup") || !strings.Contains(r.out, "serial ") {
		t.Fatalf("restore output:\n%s", r)
	}
	if fi, err := os.Stat(f.statePath() + ".backup"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup: %v, %v", fi, err)
	}
	if _, err := os.Stat(f.statePath() + ".before-restore"); err != nil {
		t.Fatalf("the replaced file was not kept: %v", err)
	}
	f.must(0, "status")
	f.must(0, "destroy", "-auto-approve")
}
