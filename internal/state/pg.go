package state

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A state in PostgreSQL lives in one schema, which holds the states of
// several pipelines, one workspace each:
//
//	workspaces(name, lineage, serial, pipeline, format_version, created_at, history_seq)
//	entries(workspace, bucket, key, value)  -- components, history, data/<ns>
//	locks(workspace, id, backend_pid, info) -- who holds the operation lock
//
// Every write locks its workspace's row (SELECT … FOR UPDATE) and moves
// the serial with a conditional UPDATE, so writers of one workspace are
// serialised and a lost race is an error, never a lost update. The
// operation lock is a session-level advisory lock held by a connection of
// its own for the operation's life: it ends with its holder's session,
// however that ends (kill -9, a lost machine), and never needs
// force-unlock.

// PGConfig locates a state in PostgreSQL.
type PGConfig struct {
	// ConnStr is a libpq connection string or URL. It holds the password:
	// it is never printed, and errors have it redacted.
	ConnStr string
	// Schema holds the tables (DefaultPGSchema when empty).
	Schema string
	// Workspace names the state in the schema (the pipeline's name when
	// empty).
	Workspace string
}

// DefaultPGSchema is the schema of a PGConfig that names none.
const DefaultPGSchema = "flowctl"

// pgTxTimeout bounds one transaction on the database.
const pgTxTimeout = time.Minute

// pools holds this process's connection pool of each connection string.
var pools sync.Map // string -> *pgxpool.Pool

// SerialConflictError is a write that lost a race: the serial moved under
// it. Nothing was written.
type SerialConflictError struct {
	State      string
	Want, Have uint64
}

func (e *SerialConflictError) Error() string {
	return fmt.Sprintf("%s: another writer moved the serial (from %d to %d) during this write; nothing was written, try again", e.State, e.Want, e.Have)
}

// pgBackend is the backend of a workspace in PostgreSQL.
type pgBackend struct {
	s        *Store
	pool     *pgxpool.Pool
	schema   string
	ws       string
	where    string // host and database, for messages
	password string
	lockKey  int64
}

// OpenPG returns the state of workspace cfg.Workspace in the database,
// creating its tables and its row (a fresh lineage) when there is none,
// as Open does for a file: pipeline, IfExists, WithFreshCheck and ReadOnly
// work the same way. localPath is the file the state would have on this
// machine (Path); nothing is written there.
func OpenPG(cfg PGConfig, localPath, pipeline string, opts ...Option) (*Store, error) {
	s := configure(localPath, opts)
	b, err := newPGBackend(s, cfg, pipeline)
	if err != nil {
		return nil, err
	}
	s.be = b
	s.loc = Location{Path: localPath, PG: &PGConfig{ConnStr: cfg.ConnStr, Schema: b.schema, Workspace: b.ws}}
	ctx, cancel := context.WithTimeout(context.Background(), s.openTimeout)
	defer cancel()
	var have string
	err = b.retry(ctx, func(ctx context.Context) error {
		err := b.pool.QueryRow(ctx, "SELECT pipeline FROM "+b.table("workspaces")+" WHERE name = $1", b.ws).Scan(&have)
		if errors.Is(err, pgx.ErrNoRows) || isUndefined(err) {
			have = ""
			return nil
		}
		return err
	})
	if err != nil {
		return nil, b.fail("open", err)
	}
	switch {
	case have == "" && pipeline == "":
		return nil, fmt.Errorf("%s does not exist", b.describe())
	case have == "":
		if err := b.create(ctx, pipeline); err != nil {
			return nil, err
		}
	case pipeline != "" && have != pipeline:
		return nil, fmt.Errorf("open %s: the workspace belongs to pipeline %q, not %q", b.describe(), have, pipeline)
	}
	if !s.readOnly && localPath != "" {
		// What flowctl keeps on this machine (logs, secrets) goes beside
		// localPath.
		if err := os.MkdirAll(filepath.Dir(localPath), 0o700); err != nil {
			return nil, fmt.Errorf("create state folder: %w", err)
		}
	}
	return s, nil
}

func newPGBackend(s *Store, cfg PGConfig, pipeline string) (*pgBackend, error) {
	b := &pgBackend{s: s, schema: cfg.Schema, ws: cfg.Workspace}
	if b.schema == "" {
		b.schema = DefaultPGSchema
	}
	if b.ws == "" {
		b.ws = pipeline
	}
	pcfg, err := pgxpool.ParseConfig(cfg.ConnStr)
	if err != nil {
		return nil, fmt.Errorf("postgres state backend: the connection string does not parse: %s", RedactConnStr(err.Error(), cfg.ConnStr))
	}
	b.password = pcfg.ConnConfig.Password
	b.where = fmt.Sprintf("%s:%d/%s", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, pcfg.ConnConfig.Database)
	if b.ws == "" {
		return nil, fmt.Errorf("postgres state backend at %s: no workspace (name the pipeline, or set workspace)", b.where)
	}
	if p, ok := pools.Load(cfg.ConnStr); ok {
		b.pool = p.(*pgxpool.Pool)
	} else {
		pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
		if err != nil {
			return nil, b.fail("connect", err)
		}
		if p, loaded := pools.LoadOrStore(cfg.ConnStr, pool); loaded {
			pool.Close()
			pool = p.(*pgxpool.Pool)
		}
		b.pool = pool
	}
	h := fnv.New64a()
	_, _ = io.WriteString(h, "flowctl\x00"+b.schema+"\x00"+b.ws)
	b.lockKey = int64(h.Sum64() & 0x7fffffffffffffff)
	return b, nil
}

func (b *pgBackend) location() string {
	return fmt.Sprintf("pg workspace %q (schema %s at %s)", b.ws, b.schema, b.where)
}

// sessionLock: an advisory lock of the holder's database session.
func (*pgBackend) sessionLock() bool { return true }

func (b *pgBackend) describe() string {
	return fmt.Sprintf("postgres state %q (schema %s at %s)", b.ws, b.schema, b.where)
}

func (b *pgBackend) close() error { return nil }

func (b *pgBackend) table(name string) string { return pgx.Identifier{b.schema, name}.Sanitize() }

// fail is err of op on the database, named and with the password
// redacted.
func (b *pgBackend) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var dbe *pgDBError
	if errors.As(err, &dbe) {
		return err
	}
	msg := err.Error()
	if b.password != "" {
		msg = strings.ReplaceAll(msg, b.password, "xxxxx")
	}
	return &pgDBError{msg: fmt.Sprintf("%s: %s: %s", b.describe(), op, msg), err: err}
}

// pgDBError is an error of the database, its message redacted.
type pgDBError struct {
	msg string
	err error
}

func (e *pgDBError) Error() string { return e.msg }
func (e *pgDBError) Unwrap() error { return e.err }

// RedactConnStr replaces the password of connStr, and connStr itself,
// wherever they appear in msg.
func RedactConnStr(msg, connStr string) string {
	if connStr == "" {
		return msg
	}
	if cfg, err := pgconn.ParseConfig(connStr); err == nil && cfg.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
	}
	return strings.ReplaceAll(msg, connStr, "(connection string)")
}

// isUndefined says err is a missing schema or table: no state yet.
func isUndefined(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000")
}

// isConnErr says err is the connection's, not the statement's: the
// server restarting, a broken or refused connection. Such a transaction
// is tried again (it committed nothing).
func isConnErr(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed")
}

// retry runs fn until it succeeds, fails other than by its connection, or
// the connection has failed for the open timeout (WithOpenTimeout) or ctx
// ends. A connection error drops the pool's connections: after a server
// restart every idle one is dead.
func (b *pgBackend) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	wait := 20 * time.Millisecond
	deadline := time.Now().Add(b.s.openTimeout)
	for {
		err := fn(ctx)
		if !isConnErr(err) || time.Now().After(deadline) {
			return err
		}
		b.pool.Reset()
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// create makes the schema's tables and the workspace's row.
func (b *pgBackend) create(ctx context.Context, pipeline string) error {
	s := b.s
	if s.freshCheck != nil {
		if err := s.freshCheck("does not exist"); err != nil {
			return err
		}
	}
	if s.ifExists {
		return fmt.Errorf("%s does not exist: %w", b.describe(), ErrNoState)
	}
	err := b.retry(ctx, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			// Two first users of a schema would both create its tables.
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(0x666c6f77)); err != nil {
				return err
			}
			for _, q := range b.schemaSQL() {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			tag, err := tx.Exec(ctx, "INSERT INTO "+b.table("workspaces")+
				" (name, lineage, serial, pipeline, format_version, created_at) VALUES ($1, $2, 0, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
				b.ws, uuid.NewString(), pipeline, FormatVersion, s.now().UTC().Format(time.RFC3339Nano))
			s.created = err == nil && tag.RowsAffected() == 1
			return err
		})
	})
	if err != nil {
		return b.fail("create", err)
	}
	return nil
}

func (b *pgBackend) schemaSQL() []string {
	ws, en, lk := b.table("workspaces"), b.table("entries"), b.table("locks")
	return []string{
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{b.schema}.Sanitize(),
		`CREATE TABLE IF NOT EXISTS ` + ws + ` (
			name text PRIMARY KEY,
			lineage text NOT NULL,
			serial bigint NOT NULL,
			pipeline text NOT NULL,
			format_version bigint NOT NULL,
			created_at text NOT NULL,
			history_seq bigint NOT NULL DEFAULT 0)`,
		`CREATE TABLE IF NOT EXISTS ` + en + ` (
			workspace text NOT NULL REFERENCES ` + ws + ` (name) ON DELETE CASCADE,
			bucket text NOT NULL,
			key bytea NOT NULL,
			value bytea NOT NULL,
			PRIMARY KEY (workspace, bucket, key))`,
		`CREATE TABLE IF NOT EXISTS ` + lk + ` (
			workspace text PRIMARY KEY REFERENCES ` + ws + ` (name) ON DELETE CASCADE,
			id text NOT NULL,
			backend_pid integer NOT NULL,
			info jsonb NOT NULL)`,
	}
}

func (b *pgBackend) update(fn func(kv) error) error { return b.transact(true, fn) }
func (b *pgBackend) view(fn func(kv) error) error   { return b.transact(false, fn) }

// errCommit marks a commit that failed: whether it took is unknown, so it
// is not tried again.
type errCommit struct{ err error }

func (e errCommit) Error() string { return e.err.Error() }
func (e errCommit) Unwrap() error { return e.err }

// transact runs fn in one transaction, tried again while the connection
// fails before the commit (fn may run more than once, as with Batch).
func (b *pgBackend) transact(write bool, fn func(kv) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgTxTimeout)
	defer cancel()
	var fnErr error
	err := b.retry(ctx, func(ctx context.Context) error {
		fnErr = nil
		err := b.attempt(ctx, write, fn, &fnErr)
		var ce errCommit
		if errors.As(err, &ce) {
			return ce.err // not a connection error to retry: wrapped below
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	return b.fail("transaction", err)
}

func (b *pgBackend) attempt(ctx context.Context, write bool, fn func(kv) error, fnErr *error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if write {
		opts = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	}
	tx, err := b.pool.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	k := &pgKV{ctx: ctx, tx: tx, b: b}
	q := "SELECT lineage, serial, pipeline, format_version, created_at, history_seq FROM " + b.table("workspaces") + " WHERE name = $1"
	if write {
		q += " FOR UPDATE"
	}
	var serial, version, seq int64
	var lineage, pipeline, created string
	if err := tx.QueryRow(ctx, q, b.ws).Scan(&lineage, &serial, &pipeline, &version, &created, &seq); err != nil {
		if errors.Is(err, pgx.ErrNoRows) || isUndefined(err) {
			*fnErr = fmt.Errorf("%s no longer exists", b.describe())
		}
		return err
	}
	k.meta = map[string][]byte{
		string(keyLineage): []byte(lineage), string(keySerial): itob(uint64(serial)), string(keyPipeline): []byte(pipeline),
		string(keyVersion): itob(uint64(version)), string(keyCreated): []byte(created),
	}
	k.serial0, k.seq0, k.seq = uint64(serial), uint64(seq), uint64(seq)
	if err := fn(k); err != nil {
		if k.err != nil {
			return k.err
		}
		*fnErr = err
		return err
	}
	if k.err != nil {
		return k.err
	}
	if !write {
		return nil
	}
	if k.metaDirty || k.seq != k.seq0 {
		tag, err := tx.Exec(ctx, "UPDATE "+b.table("workspaces")+" SET serial = $1, history_seq = $2, lineage = $3, created_at = $4 WHERE name = $5 AND serial = $6",
			int64(btoi(k.meta[string(keySerial)])), int64(k.seq), string(k.meta[string(keyLineage)]), string(k.meta[string(keyCreated)]), b.ws, int64(k.serial0))
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			var now int64
			_ = tx.QueryRow(ctx, "SELECT serial FROM "+b.table("workspaces")+" WHERE name = $1", b.ws).Scan(&now)
			*fnErr = &SerialConflictError{State: b.describe(), Want: k.serial0, Have: uint64(now)}
			return *fnErr
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return errCommit{err}
	}
	return nil
}

// pgKV is a kv over one database transaction. The meta bucket is the
// workspace's row, read at the start; the history's sequence is its
// history_seq column.
type pgKV struct {
	ctx       context.Context
	tx        pgx.Tx
	b         *pgBackend
	meta      map[string][]byte
	serial0   uint64
	seq0, seq uint64
	err       error
	metaDirty bool
}

func (k *pgKV) keep(err error) error {
	if err != nil && k.err == nil {
		k.err = err
	}
	return err
}

func (k *pgKV) get(bucket string, key []byte) []byte {
	if bucket == bkMeta {
		return k.meta[string(key)]
	}
	var v []byte
	err := k.tx.QueryRow(k.ctx, "SELECT value FROM "+k.b.table("entries")+" WHERE workspace = $1 AND bucket = $2 AND key = $3",
		k.b.ws, bucket, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if k.keep(err) != nil {
		return nil
	}
	if v == nil {
		v = []byte{}
	}
	return v
}

func (k *pgKV) put(bucket string, key, value []byte) error {
	if bucket == bkMeta {
		switch string(key) {
		case string(keySerial), string(keyLineage), string(keyCreated):
		default:
			return k.keep(fmt.Errorf("%s: meta %q is fixed at creation", k.b.describe(), key))
		}
		k.metaDirty = true
		k.meta[string(key)] = append([]byte(nil), value...)
		return nil
	}
	if value == nil {
		value = []byte{}
	}
	_, err := k.tx.Exec(k.ctx, "INSERT INTO "+k.b.table("entries")+" (workspace, bucket, key, value) VALUES ($1, $2, $3, $4)"+
		" ON CONFLICT (workspace, bucket, key) DO UPDATE SET value = excluded.value", k.b.ws, bucket, key, value)
	return k.keep(err)
}

func (k *pgKV) del(bucket string, key []byte) error {
	_, err := k.tx.Exec(k.ctx, "DELETE FROM "+k.b.table("entries")+" WHERE workspace = $1 AND bucket = $2 AND key = $3", k.b.ws, bucket, key)
	return k.keep(err)
}

type pgEntry struct{ k, v []byte }

func (k *pgKV) rows(q string, args ...any) ([]pgEntry, error) {
	rows, err := k.tx.Query(k.ctx, q, args...)
	if err != nil {
		return nil, k.keep(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgEntry, error) {
		var e pgEntry
		err := r.Scan(&e.k, &e.v)
		return e, err
	})
	return out, k.keep(err)
}

func (k *pgKV) forEach(bucket string, fn func(k, v []byte) error) error {
	es, err := k.rows("SELECT key, value FROM "+k.b.table("entries")+" WHERE workspace = $1 AND bucket = $2 ORDER BY key", k.b.ws, bucket)
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

func (k *pgKV) last(bucket string, n int, fn func(k, v []byte) error) error {
	var limit *int64
	if n > 0 {
		l := int64(n)
		limit = &l
	}
	es, err := k.rows("SELECT key, value FROM "+k.b.table("entries")+" WHERE workspace = $1 AND bucket = $2 ORDER BY key DESC LIMIT $3", k.b.ws, bucket, limit)
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

func (k *pgKV) setSequence(bucket string, n uint64) error {
	if bucket != bkHistory {
		return k.keep(fmt.Errorf("%s: no sequence for bucket %q", k.b.describe(), bucket))
	}
	k.seq = n
	return nil
}

func (k *pgKV) dataBuckets() ([]string, error) {
	rows, err := k.tx.Query(k.ctx, "SELECT DISTINCT bucket FROM "+k.b.table("entries")+" WHERE workspace = $1 AND bucket LIKE 'data/%' ORDER BY bucket", k.b.ws)
	if err != nil {
		return nil, k.keep(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, k.keep(err)
}

func (k *pgKV) nextSequence(bucket string) (uint64, error) {
	if bucket != bkHistory {
		return 0, k.keep(fmt.Errorf("%s: no sequence for bucket %q", k.b.describe(), bucket))
	}
	k.seq++
	return k.seq, nil
}
