// Package state keeps what flowctl knows of a pipeline in a bbolt file: the
// lineage fixed at creation, a serial that changes with every change of the
// recorded world, one record per component, an append-only history, and the
// operation lock.
//
// The file is opened for each transaction and closed after it, so that
// several flowctl processes (apply, serve, status) share it; bbolt's own
// file lock serialises them. Every mutation happens inside Update.
package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// FormatVersion is the layout version of the state file.
const FormatVersion = 1

var (
	bucketMeta       = []byte("meta")
	bucketComponents = []byte("components")
	bucketHistory    = []byte("history")
	bucketLock       = []byte("lock")
	bucketData       = []byte("data")

	keyLineage  = []byte("lineage")
	keySerial   = []byte("serial")
	keyPipeline = []byte("pipeline")
	keyVersion  = []byte("format_version")
	keyCreated  = []byte("created_at")
	keyLock     = []byte("lock")
	keySum      = []byte("checksum")

	allBuckets = [][]byte{bucketMeta, bucketComponents, bucketHistory, bucketLock, bucketData}
)

// FileMode is the mode of every state file: it names running objects and,
// for the control plane, registrations.
const FileMode = 0o600

// Store is a state: a bbolt file, or a workspace of a PostgreSQL database
// (OpenPG). A file Store holds no open handle between calls.
type Store struct {
	// be keeps the state: the file (boltFile) or the database.
	be          backend
	loc         Location
	path        string
	openTimeout time.Duration
	now         func() time.Time
	readOnly    bool
	freshCheck  func(why string) error
	// ifExists: Open creates nothing (IfExists).
	ifExists bool
	// created says Open gave the file a fresh lineage.
	created bool
	// file is shared by every Store of this process on the same file.
	file *sharedFile
}

// sharedFile is what the Stores of one process share about one state file.
type sharedFile struct {
	// mu serialises the process's transactions on the file. bbolt's file
	// lock serialises processes, but it waits for a held lock by polling
	// every 50 ms; the goroutines of one apply (ten components recording
	// their starts at once) would queue that way. A mutex hands the file
	// over at once.
	mu sync.RWMutex
	// batch holds the Batch calls waiting for the next commit.
	batchMu sync.Mutex
	batch   []*batchCall
	// checked is the version of the file last found sound (checkFile).
	checkedMu sync.Mutex
	checked   fileVersion
	// backedUpFor is the operation lock under which this process last
	// kept a backup (backupOnce); guarded by mu.
	backedUpFor string
}

// files holds the sharedFile of each state file, by absolute path.
var files sync.Map // string -> *sharedFile

// Option configures a Store.
type Option func(*Store)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithOpenTimeout bounds the wait for the file lock another flowctl process
// holds during its (short) transaction. Default 10s.
func WithOpenTimeout(d time.Duration) Option { return func(s *Store) { s.openTimeout = d } }

// ReadOnly opens the file for reading only: it is never written, so a file
// flowctl may not write (mode 0400, chattr +i) can be read. Update, Batch
// and the lock fail on such a store. A missing file is still created (with
// WithFreshCheck's consent): there is nothing to protect yet.
func ReadOnly() Option { return func(s *Store) { s.readOnly = true } }

// WithFreshCheck makes Open call check before it gives a missing or empty
// (0-byte) file a fresh lineage; why says which of the two it is. When check
// fails Open writes nothing and returns its error: the caller can refuse to
// start over while objects of an earlier lineage still run.
func WithFreshCheck(check func(why string) error) Option {
	return func(s *Store) { s.freshCheck = check }
}

// ErrNoState is wrapped by Open's error, with IfExists, when there is no
// state yet.
var ErrNoState = errors.New("there is no state yet")

// IfExists makes Open create nothing: where it would give a missing, empty
// or never-initialised file a fresh lineage it returns an error wrapping
// ErrNoState instead. Plan uses it to plan from an empty state without
// writing one.
func IfExists() Option { return func(s *Store) { s.ifExists = true } }

// DefaultPath is the state file of pipeline name beside pipelineFile:
// .flowctl/<name>.state.db.
func DefaultPath(pipelineFile, name string) string {
	return filepath.Join(filepath.Dir(pipelineFile), ".flowctl", name+".state.db")
}

// Open returns the store at path, creating the file (mode 0600, folder
// 0700) with a fresh lineage when it does not exist or is empty. pipeline
// names the pipeline the file belongs to; opening another pipeline's file
// fails. An empty pipeline accepts any file that exists (for commands that
// work from the state file alone). Open checks the whole file: a damaged
// one is a *DamagedError.
func Open(path, pipeline string, opts ...Option) (*Store, error) {
	s := configure(path, opts)
	s.be = boltFile{s}
	key := path
	if abs, err := filepath.Abs(path); err == nil {
		key = abs
	}
	f, _ := files.LoadOrStore(key, new(sharedFile))
	s.file = f.(*sharedFile)
	fi, err := os.Stat(path)
	if err == nil && fi.Size() == 0 && settleEmpty(path, s.openTimeout) > 0 {
		fi, err = os.Stat(path) // another process was creating it
	}
	switch {
	case err != nil && (pipeline == "" || !errors.Is(err, os.ErrNotExist)):
		return nil, fmt.Errorf("state file %s: %w", path, err)
	case err == nil && fi.Size() == 0 && pipeline == "":
		return nil, &DamagedError{Path: path, Problem: "the file is empty (0 bytes)"}
	case err != nil || fi.Size() == 0:
		why := "does not exist"
		if err == nil {
			why = "is empty (0 bytes)"
		}
		if err := s.create(pipeline, why); err != nil {
			return nil, err
		}
		return s, nil
	}
	var m Meta
	if err := s.View(func(tx *Tx) error { m = tx.Meta(); return nil }); err != nil {
		if !errors.Is(err, errUninitialised) {
			return nil, err
		}
		if pipeline == "" {
			return nil, &DamagedError{Path: path, Problem: errUninitialised.Error()}
		}
		if err := s.create(pipeline, "was created but never initialised"); err != nil {
			return nil, err
		}
		return s, nil
	}
	if pipeline != "" && m.Pipeline != pipeline {
		return nil, fmt.Errorf("open state %s: the file belongs to pipeline %q, not %q", path, m.Pipeline, pipeline)
	}
	return s, nil
}

func configure(path string, opts []Option) *Store {
	s := &Store{path: path, openTimeout: 10 * time.Second, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// create gives a missing or empty file its buckets and a fresh lineage,
// once freshCheck agrees.
func (s *Store) create(pipeline, why string) error {
	// The check runs with IfExists too: a plan over a lost state must say
	// what still runs, as an apply would, though it creates nothing.
	if s.freshCheck != nil {
		if err := s.freshCheck(why); err != nil {
			return err
		}
	}
	if s.ifExists {
		return fmt.Errorf("state file %s %s: %w", s.path, why, ErrNoState)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("create state folder: %w", err)
	}
	s.file.mu.Lock()
	defer s.file.mu.Unlock()
	err := s.guard(func() error {
		db, err := bolt.Open(s.path, FileMode, &bolt.Options{Timeout: s.openTimeout})
		if err != nil {
			return err
		}
		err = db.Update(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketMeta) != nil {
				return nil // another process created it meanwhile
			}
			for _, b := range allBuckets {
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
			meta := tx.Bucket(bucketMeta)
			for k, v := range map[string][]byte{
				string(keyLineage):  []byte(uuid.NewString()),
				string(keySerial):   itob(0),
				string(keyPipeline): []byte(pipeline),
				string(keyVersion):  itob(FormatVersion),
				string(keyCreated):  []byte(s.now().UTC().Format(time.RFC3339Nano)),
			} {
				if err := meta.Put([]byte(k), v); err != nil {
					return err
				}
			}
			s.created = true
			return seal(tx, nil)
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create state %s: %w", s.path, err)
	}
	return nil
}

// Created says Open made the file (or filled an empty one) with a fresh
// lineage.
func (s *Store) Created() bool { return s.created }

// Path is the file's path. For a state in a database it is the file the
// state would have on this machine: flowctl keeps what is local to this
// machine (logs, the control plane's secrets) beside it.
func (s *Store) Path() string { return s.path }

// String names the state in messages: the file's path, or the database
// workspace (never a password).
func (s *Store) String() string { return s.be.describe() }

// Close releases what the store holds open between calls (a database's
// connections); a file store holds nothing.
func (s *Store) Close() error { return s.be.close() }

// ReadOnly says the store was opened with the ReadOnly option.
func (s *Store) ReadOnly() bool { return s.readOnly }

// errReadOnly is returned by writes on a read-only store.
var errReadOnly = errors.New("the state was opened read-only")

// open checks the file (checkFile) and opens it with bbolt. It returns the
// file's version and whether it had passed the checks before.
func (s *Store) open(readOnly bool) (*bolt.DB, fileVersion, bool, error) {
	for {
		v, known, err := s.checkFile()
		if err != nil {
			return nil, v, false, err
		}
		db, err := bolt.Open(s.path, FileMode, &bolt.Options{Timeout: s.openTimeout, ReadOnly: readOnly})
		if err != nil {
			if errors.Is(err, bolt.ErrTimeout) {
				return nil, v, false, fmt.Errorf("state file %s is held by another flowctl process (waited %s): %w", s.path, s.openTimeout, err)
			}
			return nil, v, false, fmt.Errorf("open state %s: %w", s.path, err)
		}
		// Another process may have written between the check and bbolt's
		// lock: then the version opened is not the one checked; check it.
		if now, err := statVersion(s.path); err == nil && now == v {
			return db, v, known, nil
		}
		_ = db.Close()
	}
}

func (s *Store) update(fn func(*bolt.Tx, *changes) error) error {
	s.file.mu.Lock()
	defer s.file.mu.Unlock()
	return s.updateLocked(fn)
}

// updateLocked is update for a caller holding s.file.mu. It keeps the
// previous version of the file as the backup when the transaction moves
// the serial, and seals what it wrote. fn writes the components and data
// through a boltKV with the changes it is given (the seal is updated from
// them); the meta and lock buckets it may write directly.
func (s *Store) updateLocked(fn func(*bolt.Tx, *changes) error) error {
	if s.readOnly {
		return fmt.Errorf("state file %s: %w", s.path, errReadOnly)
	}
	return s.guard(func() error {
		db, _, known, err := s.open(false)
		if err != nil {
			return err
		}
		defer closeOnPanic(db)
		err = db.Update(func(tx *bolt.Tx) error {
			if !known {
				if err := s.checkInvariants(tx); err != nil {
					return err
				}
			}
			before := btoi(tx.Bucket(bucketMeta).Get(keySerial))
			ch := newChanges(tx)
			if err := fn(tx, ch); err != nil {
				return err
			}
			if btoi(tx.Bucket(bucketMeta).Get(keySerial)) != before {
				if err := s.backupOnce(tx); err != nil {
					return err
				}
			}
			return seal(tx, ch)
		})
		if err == nil {
			// What this process just wrote is sound: bbolt wrote it
			// from a file that passed the checks.
			if v, serr := statVersion(s.path); serr == nil {
				s.markChecked(v)
			}
		}
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.file.mu.RLock()
	defer s.file.mu.RUnlock()
	return s.guard(func() error {
		db, v, known, err := s.open(true)
		if err != nil {
			return err
		}
		defer closeOnPanic(db)
		err = db.View(func(tx *bolt.Tx) error {
			if !known {
				if err := s.checkInvariants(tx); err != nil {
					return err
				}
			}
			return fn(tx)
		})
		if err == nil && !known {
			s.markChecked(v)
		}
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// Update runs fn in one read-write transaction. Everything fn does is
// committed together when it returns nil, and nothing when it returns an
// error. The serial is incremented once if fn changed the recorded world
// (component records' desired parts, or the set of records).
func (s *Store) Update(fn func(tx *Tx) error) error {
	if s.readOnly {
		return fmt.Errorf("%s: %w", s.be.describe(), errReadOnly)
	}
	return s.be.update(func(k kv) error { return s.run(k, fn) })
}

// run runs fn in k and moves the serial if fn changed the recorded world.
func (s *Store) run(k kv, fn func(tx *Tx) error) error {
	tx := &Tx{kv: k, now: s.now}
	if err := fn(tx); err != nil {
		return err
	}
	if tx.changed {
		return k.put(bkMeta, keySerial, itob(btoi(k.get(bkMeta, keySerial))+1))
	}
	return nil
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.be.view(func(k kv) error {
		return fn(&Tx{kv: k, now: s.now})
	})
}

// Tx is a transaction on the state. It is valid only inside the function
// passed to Update or View.
type Tx struct {
	kv      kv
	now     func() time.Time
	changed bool
}

// Meta is the identity of a state file.
type Meta struct {
	Lineage       string    `json:"lineage"`
	Serial        uint64    `json:"serial"`
	Pipeline      string    `json:"pipeline"`
	FormatVersion uint64    `json:"format_version"`
	CreatedAt     time.Time `json:"created_at"`
	// TokenGeneration is Tx.TokenGeneration: the generation of the secret
	// that signs component tokens now.
	TokenGeneration uint64 `json:"token_generation"`
}

// Meta returns the file's lineage, serial and pipeline.
func (tx *Tx) Meta() Meta {
	get := func(k []byte) []byte { return tx.kv.get(bkMeta, k) }
	created, _ := time.Parse(time.RFC3339Nano, string(get(keyCreated)))
	return Meta{
		Lineage:       string(get(keyLineage)),
		Serial:        btoi(get(keySerial)),
		Pipeline:      string(get(keyPipeline)),
		FormatVersion: btoi(get(keyVersion)),
		CreatedAt:     created,

		TokenGeneration: tx.TokenGeneration(),
	}
}

// Component returns the record at addr, or nil.
func (tx *Tx) Component(addr string) (*Record, error) {
	v := tx.kv.get(bkComponents, []byte(addr))
	if v == nil {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode record %s: %w", addr, err)
	}
	return &r, nil
}

// Components returns every record, sorted by address.
func (tx *Tx) Components() ([]*Record, error) {
	var out []*Record
	err := tx.kv.forEach(bkComponents, func(k, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode record %s: %w", k, err)
		}
		out = append(out, &r)
		return nil
	})
	return out, err
}

// PutComponent writes r, stamping UpdatedAt (and CreatedAt for a new
// record). The serial moves only when r's desired part differs from what
// was recorded.
func (tx *Tx) PutComponent(r *Record) error {
	if r.Address == "" {
		return errors.New("put component: empty address")
	}
	now := tx.now().UTC()
	var old Record
	if v := tx.kv.get(bkComponents, []byte(r.Address)); v != nil {
		if err := json.Unmarshal(v, &old); err != nil {
			return fmt.Errorf("decode record %s: %w", r.Address, err)
		}
		if !bytes.Equal(old.desiredKey(), r.desiredKey()) {
			tx.changed = true
		}
		if r.CreatedAt.IsZero() {
			r.CreatedAt = old.CreatedAt
		}
	} else {
		tx.changed = true
		if r.CreatedAt.IsZero() {
			r.CreatedAt = now
		}
	}
	r.UpdatedAt = now
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", r.Address, err)
	}
	return tx.kv.put(bkComponents, []byte(r.Address), v)
}

// DeleteComponent forgets the record at addr; it is not an error when there
// is none.
func (tx *Tx) DeleteComponent(addr string) error {
	if tx.kv.get(bkComponents, []byte(addr)) == nil {
		return nil
	}
	tx.changed = true
	return tx.kv.del(bkComponents, []byte(addr))
}

// AppendHistory adds an event at the end of the history, stamping its time
// and sequence number.
func (tx *Tx) AppendHistory(e *Event) error {
	seq, err := tx.kv.nextSequence(bkHistory)
	if err != nil {
		return err
	}
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = tx.now().UTC()
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode history event: %w", err)
	}
	return tx.kv.put(bkHistory, itob(seq), v)
}

// History returns the last n events, oldest first (all of them when n <= 0).
func (tx *Tx) History(n int) ([]*Event, error) {
	var out []*Event
	err := tx.kv.last(bkHistory, n, func(k, v []byte) error {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode history event %d: %w", btoi(k), err)
		}
		out = append(out, &e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// GetData reads a value other packages keep in the state (the control
// plane's registry, the watcher's backoff), under namespace and key. It
// returns nil when there is none.
func (tx *Tx) GetData(namespace, key string) []byte {
	return append([]byte(nil), tx.kv.get(bkDataPrefix+namespace, []byte(key))...)
}

// PutData writes a value under namespace and key. It never moves the serial:
// such data describe the running world, not the desired one.
func (tx *Tx) PutData(namespace, key string, value []byte) error {
	return tx.kv.put(bkDataPrefix+namespace, []byte(key), value)
}

// DeleteData removes namespace/key.
func (tx *Tx) DeleteData(namespace, key string) error {
	return tx.kv.del(bkDataPrefix+namespace, []byte(key))
}

// ForEachData calls fn for every key of namespace, in key order.
func (tx *Tx) ForEachData(namespace string, fn func(key string, value []byte) error) error {
	return tx.kv.forEach(bkDataPrefix+namespace, func(k, v []byte) error { return fn(string(k), v) })
}

func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func btoi(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
