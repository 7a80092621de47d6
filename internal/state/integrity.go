package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// A state file is checked twice before flowctl uses it. checkFile walks its
// pages as bbolt would (verifyBolt), before bbolt maps it: bbolt trusts the
// file and panics, or faults, on a truncated or flipped one. Then, in the
// first transaction, checkInvariants reads every bucket, key and record
// flowctl expects, and compares the meta and component records with the
// checksum the last write left (seal): a bit flipped inside a record is
// still valid bbolt and valid JSON, but not the file flowctl wrote. Both
// run again whenever the file changed since they last passed (its size,
// times or inode differ) in this process.

// fileVersion tells one version of a file from another.
type fileVersion struct {
	size, mtime, ctime int64
	ino                uint64
}

func statVersion(path string) (fileVersion, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileVersion{}, err
	}
	return versionOf(&st), nil
}

func versionOf(st *syscall.Stat_t) fileVersion {
	return fileVersion{size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), ino: st.Ino}
}

// isChecked says whether v is the version this process last wrote or
// checked.
func (s *Store) isChecked(v fileVersion) bool {
	s.file.checkedMu.Lock()
	defer s.file.checkedMu.Unlock()
	return s.file.checked == v
}

// checkFile checks the file's structure unless this version already
// passed. It returns the version and whether it had already passed (the
// invariants need checking when it had not).
func (s *Store) checkFile() (fileVersion, bool, error) {
	v, err := statVersion(s.path)
	if err != nil {
		return v, false, fmt.Errorf("state file %s: %w", s.path, err)
	}
	if s.isChecked(v) {
		return v, true, nil
	}
	data, v, unmap, err := readShared(s.path, s.openTimeout)
	if err != nil {
		return v, false, fmt.Errorf("state file %s: %w", s.path, err)
	}
	defer unmap()
	if len(data) == 0 {
		return v, false, &DamagedError{Path: s.path, Problem: "the file is empty (0 bytes)"}
	}
	if err := verifyBolt(data); err != nil {
		return v, false, &DamagedError{Path: s.path, Problem: err.Error()}
	}
	return v, false, nil
}

// readShared maps the file read-only and takes its version under a shared
// flock, the kind bbolt takes for a reader: another process's write (bbolt
// holds an exclusive flock from open to close) is never seen half done — a
// torn read would look like damage. The lock is held until unmap. A map,
// not a copy: the check reads the pages the tree reaches, not the whole
// file, which bbolt grows far beyond what it holds (16 MiB for 1,000
// components). timeout bounds the wait as bbolt's open timeout does (0: no
// bound). A file cut short under the map faults; guard turns that into
// damage.
func readShared(path string, timeout time.Duration) (data []byte, v fileVersion, unmap func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileVersion{}, nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK {
			_ = f.Close()
			return nil, fileVersion{}, nil, fmt.Errorf("lock for reading: %w", err)
		}
		if timeout > 0 && time.Now().After(deadline) {
			_ = f.Close()
			return nil, fileVersion{}, nil, fmt.Errorf("held by another flowctl process (waited %s): %w", timeout, bolt.ErrTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The version is taken again under the lock: it is the one read.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, v, nil, err
	}
	v = versionOf(&st)
	if st.Size == 0 {
		return nil, v, func() { _ = f.Close() }, nil
	}
	if st.Size > maxMapped {
		_ = f.Close()
		return nil, v, nil, fmt.Errorf("the file is %d bytes, more than flowctl reads (%d)", st.Size, int64(maxMapped))
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		_ = f.Close()
		return nil, v, nil, fmt.Errorf("map for reading: %w", err)
	}
	return data, v, func() { _ = syscall.Munmap(data); _ = f.Close() }, nil
}

// maxMapped bounds the state file readShared maps (bbolt's own bound on a
// file it maps, on 64-bit machines, is larger; no flowctl state comes near).
const maxMapped = 1 << 40

// markChecked records v as a version that passed both checks.
func (s *Store) markChecked(v fileVersion) {
	s.file.checkedMu.Lock()
	s.file.checked = v
	s.file.checkedMu.Unlock()
}

// guard runs fn, turning a panic or a memory fault inside bbolt into a
// *DamagedError. checkFile should leave bbolt nothing to panic on; this is
// the last line of defence, for a file damaged between the check and the
// read.
func (s *Store) guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &DamagedError{Path: s.path, Problem: fmt.Sprintf("reading it failed: %v", r)}
		}
	}()
	return fn()
}

// closeOnPanic closes db (releasing its file lock, which would otherwise
// block this process's next open) when a panic passes, and lets the panic
// go on to guard.
func closeOnPanic(db *bolt.DB) {
	if r := recover(); r != nil {
		_ = db.Close()
		panic(r)
	}
}

var metaKeys = map[string]bool{
	string(keyLineage): true, string(keySerial): true, string(keyPipeline): true,
	string(keyVersion): true, string(keyCreated): true, string(keySum): true,
}

// checkInvariants reads everything flowctl keeps in the file and checks it
// is what flowctl wrote.
func (s *Store) checkInvariants(tx *bolt.Tx) error {
	if err := invariants(tx); err != nil {
		if errors.Is(err, errUninitialised) {
			return err
		}
		if _, ok := err.(*versionError); ok {
			return fmt.Errorf("open state %s: %w", s.path, err)
		}
		return &DamagedError{Path: s.path, Problem: err.Error()}
	}
	return nil
}

// errUninitialised is a bbolt file with no bucket at all: a creation cut
// short between bbolt's first pages and flowctl's first transaction (a
// kill -9 at that moment). It holds nothing, so it is treated as an empty
// file, not as damage.
var errUninitialised = errors.New("the file was created but never initialised")

// hasBuckets says whether the file holds any bucket.
func hasBuckets(tx *bolt.Tx) bool {
	k, _ := tx.Cursor().First()
	return k != nil
}

// versionError is a file of a newer flowctl: not damage.
type versionError struct{ version uint64 }

func (e *versionError) Error() string {
	return fmt.Sprintf("state format version %d is newer than this flowctl understands (%d)", e.version, FormatVersion)
}

// boltCheckMaxSize bounds the files bbolt's own consistency check
// (tx.Check: every page reachable or free, none both, none twice) runs on
// when a file is first opened; beyond it the page walk (verifyBolt) alone
// stands.
const boltCheckMaxSize = 8 << 20

func invariants(tx *bolt.Tx) error {
	if tx.Size() <= boltCheckMaxSize {
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return fmt.Errorf("bbolt's consistency check: %v", first)
		}
	}
	if !hasBuckets(tx) {
		return errUninitialised
	}
	known := map[string]bool{}
	for _, b := range allBuckets {
		known[string(b)] = true
		if tx.Bucket(b) == nil {
			return fmt.Errorf("bucket %q is missing", b)
		}
	}
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if !known[string(name)] {
			return fmt.Errorf("unknown bucket %q", name)
		}
		return nil
	}); err != nil {
		return err
	}
	want := tx.Bucket(bucketMeta).Get(keySum)
	if want != nil {
		if got := computedSeal(tx, want); string(want) != got {
			return fmt.Errorf("the checksum of its records does not match: they were changed outside flowctl (recorded %.16s…, computed %.16s…)", want, got)
		}
	}
	if err := checkMeta(tx.Bucket(bucketMeta)); err != nil {
		return err
	}
	return checkRecords(tx, bytes.HasPrefix(want, []byte(sealPrefix)))
}

func checkMeta(meta *bolt.Bucket) error {
	if err := meta.ForEach(func(k, v []byte) error {
		if !metaKeys[string(k)] || v == nil {
			return fmt.Errorf("unknown meta key %q", k)
		}
		return nil
	}); err != nil {
		return err
	}
	v := meta.Get(keyVersion)
	if len(v) != 8 || btoi(v) == 0 {
		return fmt.Errorf("meta: format_version is not a number (%q)", v)
	}
	if btoi(v) > FormatVersion {
		return &versionError{btoi(v)}
	}
	lineage := meta.Get(keyLineage)
	if _, err := uuid.Parse(string(lineage)); err != nil || len(lineage) != 36 {
		return fmt.Errorf("meta: lineage %q is not a UUID", lineage)
	}
	if v := meta.Get(keySerial); len(v) != 8 {
		return fmt.Errorf("meta: serial is not a number (%q)", v)
	}
	if len(meta.Get(keyPipeline)) == 0 {
		return fmt.Errorf("meta: pipeline name is missing")
	}
	if _, err := time.Parse(time.RFC3339Nano, string(meta.Get(keyCreated))); err != nil {
		return fmt.Errorf("meta: created_at %q is not a time", meta.Get(keyCreated))
	}
	return nil
}

// checkRecords decodes every component record, history event and lock,
// and checks the data namespaces are buckets. sealed says the file's seal
// covers the records and events and matched: they are then, byte for
// byte, what flowctl wrote (from a Record or Event), and are not decoded
// again — the check of a file another process wrote would otherwise cost
// a decode of every record and of the whole history, which grows with
// every operation.
func checkRecords(tx *bolt.Tx, sealed bool) error {
	if sealed {
		return checkLockAndData(tx)
	}
	if err := tx.Bucket(bucketComponents).ForEach(func(k, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("component record %q does not decode: %v", k, err)
		}
		if r.Address != string(k) {
			return fmt.Errorf("component record %q names address %q", k, r.Address)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := tx.Bucket(bucketHistory).ForEach(func(k, v []byte) error {
		var e Event
		if len(k) != 8 || v == nil {
			return fmt.Errorf("history key %q is not a sequence number", k)
		}
		if err := json.Unmarshal(v, &e); err != nil || e.Seq != btoi(k) {
			return fmt.Errorf("history event %d does not decode", btoi(k))
		}
		return nil
	}); err != nil {
		return err
	}
	return checkLockAndData(tx)
}

// checkLockAndData decodes the lock and checks the data namespaces are
// buckets.
func checkLockAndData(tx *bolt.Tx) error {
	if err := tx.Bucket(bucketLock).ForEach(func(k, v []byte) error {
		var l LockInfo
		if !bytes.Equal(k, keyLock) || json.Unmarshal(v, &l) != nil {
			return fmt.Errorf("the lock record %q does not decode", k)
		}
		return nil
	}); err != nil {
		return err
	}
	return tx.Bucket(bucketData).ForEach(func(k, v []byte) error {
		if v != nil {
			return fmt.Errorf("data namespace %q is not a bucket", k)
		}
		return nil
	})
}

// The seal: what the last write left in meta's "checksum". Two forms:
//
//   - legacy: the hex SHA-256 of every key and value in order but the
//     history's and the seal's (legacyChecksum). Files sealed so are still
//     checked that way, and sealed the new way at their next write.
//   - "2:<records>:<rest>": <records> is the sum, modulo 2^256, of a
//     SHA-256 of each entry of the components, history and data buckets
//     (its bucket path, key and value, or that it is a bucket); <rest> is
//     the SHA-256 of the meta and lock entries and of <records>. A bit
//     flipped in any entry changes that entry's hash and so the sum, as it
//     changed the whole SHA-256 before; but a write updates the sum with
//     the hashes of the entries it changed, before and after (changes),
//     instead of hashing every record again: O(changes) per write, not
//     O(records). As it covers the history too, a file whose seal of this
//     form matches holds only records and events flowctl wrote, and the
//     check does not decode each again (checkRecords).
const sealPrefix = "2:"

// sum256 is a sum of entry hashes modulo 2^256, as four 64-bit limbs,
// least significant first.
type sum256 [4]uint64

func (s *sum256) add(d *[32]byte) {
	var carry uint64
	for i := range s {
		s[i], carry = bits.Add64(s[i], binary.LittleEndian.Uint64(d[8*i:]), carry)
	}
}

func (s *sum256) sub(d *[32]byte) {
	var borrow uint64
	for i := range s {
		s[i], borrow = bits.Sub64(s[i], binary.LittleEndian.Uint64(d[8*i:]), borrow)
	}
}

func (s *sum256) bytes() []byte {
	out := make([]byte, 32)
	for i, l := range s {
		binary.LittleEndian.PutUint64(out[8*i:], l)
	}
	return out
}

func parseSum256(h string) (sum256, bool) {
	var s sum256
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return s, false
	}
	for i := range s {
		s[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return s, true
}

// framedHash is a SHA-256 fed length-prefixed fields (a 4-byte big-endian
// length, then the bytes), so that no two sequences of fields hash alike.
type framedHash struct {
	hash.Hash
	n [4]byte
}

func newFramedHash() *framedHash { return &framedHash{Hash: sha256.New()} }

// field writes b, prefixed with its length.
func (f *framedHash) field(b []byte) {
	binary.BigEndian.PutUint32(f.n[:], uint32(len(b)))
	f.Write(f.n[:])
	f.Write(b)
}

// entryDigest is the hash of one entry: its bucket path, key, and value or
// (value nil) the mark of a nested bucket, each length-prefixed.
func entryDigest(path []string, k, v []byte) [32]byte {
	h := newFramedHash()
	add := h.field
	h.Write([]byte{byte(len(path))})
	for _, p := range path {
		add([]byte(p))
	}
	add(k)
	if v == nil {
		h.Write([]byte{'B'})
	} else {
		h.Write([]byte{'V'})
		add(v)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// sumBuckets are the buckets whose entries the sum covers.
var sumBuckets = [][]byte{bucketComponents, bucketHistory, bucketData}

// recordsSum is the sum of the entry hashes of the components, history and
// data buckets, every one read.
func recordsSum(tx *bolt.Tx) sum256 {
	var s sum256
	var walk func(path []string, b *bolt.Bucket)
	walk = func(path []string, b *bolt.Bucket) {
		_ = b.ForEach(func(k, v []byte) error {
			d := entryDigest(path, k, v)
			s.add(&d)
			if v == nil {
				if sub := b.Bucket(k); sub != nil {
					walk(append(path[:len(path):len(path)], string(k)), sub)
				}
			}
			return nil
		})
	}
	for _, name := range sumBuckets {
		if b := tx.Bucket(name); b != nil {
			walk([]string{string(name)}, b)
		}
	}
	return s
}

// sealOf is the seal of the file whose components and data sum to records.
func sealOf(tx *bolt.Tx, records sum256) string {
	h := newFramedHash()
	add := h.field
	rec := records.bytes()
	add(rec)
	for _, name := range [][]byte{bucketMeta, bucketLock} {
		add(name)
		b := tx.Bucket(name)
		if b == nil {
			continue
		}
		_ = b.ForEach(func(k, v []byte) error {
			if name[0] == 'm' && bytes.Equal(k, keySum) {
				return nil
			}
			add(k)
			if v == nil {
				h.Write([]byte{'{', '}'}) // not flowctl's: checkMeta refuses it
				return nil
			}
			add(v)
			return nil
		})
	}
	return sealPrefix + hex.EncodeToString(rec) + ":" + hex.EncodeToString(h.Sum(nil))
}

// computedSeal is the seal of what tx holds, in the form of want (legacy
// or not), every record read.
func computedSeal(tx *bolt.Tx, want []byte) string {
	if !bytes.HasPrefix(want, []byte(sealPrefix)) {
		return legacyChecksum(tx)
	}
	return sealOf(tx, recordsSum(tx))
}

// legacyChecksum is the seal of files written before the sum: the SHA-256
// of every bucket but the history, the checksum itself left out.
func legacyChecksum(tx *bolt.Tx) string {
	h := newFramedHash()
	add := h.field
	var walk func(b *bolt.Bucket)
	walk = func(b *bolt.Bucket) {
		_ = b.ForEach(func(k, v []byte) error {
			add(k)
			if v == nil {
				h.Write([]byte{'{'})
				walk(b.Bucket(k))
				h.Write([]byte{'}'})
				return nil
			}
			add(v)
			return nil
		})
	}
	for _, name := range [][]byte{bucketMeta, bucketComponents, bucketLock, bucketData} {
		add(name)
		b := tx.Bucket(name)
		if name[0] == 'm' {
			_ = b.ForEach(func(k, v []byte) error {
				if !bytes.Equal(k, keySum) {
					add(k)
					add(v)
				}
				return nil
			})
			continue
		}
		walk(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// changes are the component, history and data entries a write transaction
// touched, each with its hash as the transaction found it, so that seal
// can take those out of the sum and put the new ones in. Every write to
// those buckets goes through boltKV, which records it here.
type changes struct {
	tx      *bolt.Tx
	touched map[string]*touch
	order   []*touch
}

type touch struct {
	path   []string
	key    []byte
	had    bool
	before [32]byte
}

func newChanges(tx *bolt.Tx) *changes {
	return &changes{tx: tx, touched: map[string]*touch{}}
}

// sealedPath is the bucket path of a kv bucket the sum covers, or nil.
func sealedPath(bucket string) []string {
	top, sub, nested := strings.Cut(bucket, "/")
	switch {
	case (top == bkComponents || top == bkHistory) && !nested:
		return []string{top}
	case top == "data" && nested:
		return []string{top, sub}
	case top == "data":
		return []string{top}
	}
	return nil
}

// note records key of bucket (a kv bucket name) as about to change. The
// first note of a key keeps its hash from before the transaction.
func (c *changes) note(bucket string, key []byte) {
	if c == nil {
		return
	}
	path := sealedPath(bucket)
	if path == nil {
		return
	}
	id := strings.Join(path, "\x00") + "\x00\x00" + string(key)
	if _, ok := c.touched[id]; ok {
		return
	}
	t := &touch{path: path, key: append([]byte(nil), key...)}
	if v, ok := lookup(c.tx, path, key); ok {
		t.had, t.before = true, entryDigest(path, key, v)
	}
	c.touched[id] = t
	c.order = append(c.order, t)
}

// lookup finds key in the bucket at path: its value (nil for a nested
// bucket) and whether it exists.
func lookup(tx *bolt.Tx, path []string, key []byte) ([]byte, bool) {
	b := tx.Bucket([]byte(path[0]))
	for _, p := range path[1:] {
		if b == nil {
			return nil, false
		}
		b = b.Bucket([]byte(p))
	}
	if b == nil {
		return nil, false
	}
	if v := b.Get(key); v != nil {
		return v, true
	}
	return nil, b.Bucket(key) != nil
}

// apply moves s from the entries' hashes before the transaction to their
// hashes now.
func (c *changes) apply(s *sum256) {
	for _, t := range c.order {
		if t.had {
			s.sub(&t.before)
		}
		if v, ok := lookup(c.tx, t.path, t.key); ok {
			d := entryDigest(t.path, t.key, v)
			s.add(&d)
		}
	}
}

// seal records the seal of what the transaction leaves. With ch (every
// change to the components, history and data this transaction made) and a file
// already sealed with a sum, only the changed entries are hashed; else
// every one.
func seal(tx *bolt.Tx, ch *changes) error {
	meta := tx.Bucket(bucketMeta)
	prev := string(meta.Get(keySum))
	var records sum256
	ok := false
	if ch != nil {
		if rest, found := strings.CutPrefix(prev, sealPrefix); found {
			h, _, _ := strings.Cut(rest, ":")
			records, ok = parseSum256(h)
		}
	}
	if ok {
		ch.apply(&records)
	} else {
		records = recordsSum(tx)
	}
	sum := sealOf(tx, records)
	if prev == sum {
		return nil
	}
	return meta.Put(keySum, []byte(sum))
}

// BackupPath is where the state as it was before the last operation that
// moved the serial is kept (see backupOnce).
func BackupPath(path string) string { return path + ".backup" }

// backupOnce keeps the backup before a write that moves the serial: once
// per operation (the operation lock held, as by an apply, which writes many
// times), so that the backup is the state as it was before the operation,
// not halfway through it; before every such write made without the lock.
// The caller holds s.file.mu.
func (s *Store) backupOnce(tx *bolt.Tx) error {
	var holder LockInfo
	if v := tx.Bucket(bucketLock).Get(keyLock); v != nil {
		_ = json.Unmarshal(v, &holder)
	}
	if holder.ID != "" && holder.ID == s.file.backedUpFor {
		return nil
	}
	if err := s.writeBackup(); err != nil {
		return err
	}
	s.file.backedUpFor = holder.ID
	return nil
}

// writeBackup copies the file, as it is before the running transaction
// commits, to the backup path (atomically, mode 0600). bbolt writes
// nothing to the file before the commit, and pages it will overwrite are
// not reachable from the current meta page, so the copy is the previous
// version whole.
func (s *Store) writeBackup() error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("back up state: %w", err)
	}
	return writeFileAtomic(BackupPath(s.path), data)
}

// writeFileAtomic replaces path with data (mode 0600) through a temporary
// file in the same folder, synced before the rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(FileMode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
