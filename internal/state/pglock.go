package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The operation lock of a state in PostgreSQL: a session-level advisory
// lock (pg_try_advisory_lock) taken on a connection of its own and kept
// for the operation's life, so that it ends with its holder's session. The
// row of the locks table names the holder for `flowctl` to show; it is
// meaningful only while the advisory lock is held.

// tryLock takes the advisory lock once, without waiting.
func (b *pgBackend) tryLock(info LockInfo) (holder, broken *LockInfo, release func() error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.s.openTimeout)
	defer cancel()
	// A connection of the pool, taken out of it for the operation's
	// life: opening one of its own would cost a login per command.
	var conn *pgxpool.Conn
	var got bool
	err = b.retry(ctx, func(ctx context.Context) error {
		c, err := b.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", b.lockKey).Scan(&got); err != nil {
			_ = c.Hijack().Close(context.Background())
			return err
		}
		conn = c
		return nil
	})
	if err != nil {
		return nil, nil, nil, b.fail("lock", err)
	}
	if !got {
		conn.Release()
		h, err := b.lockRow(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		if h == nil { // the holder has not written its row yet
			h = &LockInfo{Operation: "(starting)", Created: time.Now().UTC()}
		}
		return h, nil, nil, nil
	}
	broken, err = b.writeLockRow(ctx, conn, info)
	if err != nil {
		_ = conn.Hijack().Close(context.Background())
		return nil, nil, nil, err
	}
	release = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), b.s.openTimeout)
		defer cancel()
		// The row goes first (committed without waiting for the disk, as
		// it was written), while the lock still guards it; then the
		// session, unlocked, goes back to the pool.
		q := "DELETE FROM " + b.table("locks") + " WHERE workspace = $1 AND id = $2"
		batch := &pgx.Batch{}
		batch.Queue(asyncCommit)
		batch.Queue(q, b.ws, info.ID)
		err := conn.SendBatch(ctx, batch).Close()
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", b.lockKey)
		}
		if err == nil {
			conn.Release()
		} else {
			_ = conn.Hijack().Close(ctx)
		}
		if err != nil {
			// The session died (a database restart): the advisory lock
			// went with it; the row is a dead holder's now.
			_, err = b.pool.Exec(ctx, q, b.ws, info.ID)
		}
		return b.fail("release lock", err)
	}
	return nil, broken, release, nil
}

// asyncCommit, first in a batch (one implicit transaction), commits it
// without waiting for the disk; the session's setting is left alone.
const asyncCommit = "SELECT set_config('synchronous_commit', 'off', true)"

// writeLockRow records info as the holder, on the session that holds the
// lock, and returns the row it replaced (a holder whose session ended).
// The row is a description, not the lock: it is written without waiting
// for the disk (synchronous_commit off), which a crash can only lose along
// with the lock itself. One round trip.
func (b *pgBackend) writeLockRow(ctx context.Context, conn *pgxpool.Conn, info LockInfo) (*LockInfo, error) {
	v, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	batch := &pgx.Batch{}
	batch.Queue(asyncCommit)
	var old *LockInfo
	batch.Queue("SELECT info::text FROM "+b.table("locks")+" WHERE workspace = $1", b.ws).QueryRow(func(row pgx.Row) error {
		var v []byte
		err := row.Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		old = &LockInfo{}
		if err := json.Unmarshal(v, old); err != nil {
			return fmt.Errorf("decode lock: %w", err)
		}
		return nil
	})
	batch.Queue("INSERT INTO "+b.table("locks")+" (workspace, id, backend_pid, info) VALUES ($1, $2, pg_backend_pid(), $3)"+
		" ON CONFLICT (workspace) DO UPDATE SET id = excluded.id, backend_pid = excluded.backend_pid, info = excluded.info",
		b.ws, info.ID, string(v))
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return nil, b.fail("lock", err)
	}
	return old, nil
}

// lockRow reads the lock's row, nil when there is none.
func (b *pgBackend) lockRow(ctx context.Context) (*LockInfo, error) {
	var v []byte
	err := b.pool.QueryRow(ctx, "SELECT info::text FROM "+b.table("locks")+" WHERE workspace = $1", b.ws).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, b.fail("read lock", err)
	}
	var info LockInfo
	if err := json.Unmarshal(v, &info); err != nil {
		return nil, fmt.Errorf("%s: decode lock: %w", b.describe(), err)
	}
	return &info, nil
}

// lockHeld says whether a session holds the advisory lock, and which
// (its backend pid).
func (b *pgBackend) lockHeld(ctx context.Context) (bool, int32, error) {
	var pid int32
	err := b.pool.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2`, b.lockKey>>32, b.lockKey&0xffffffff).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, b.fail("read lock", err)
	}
	return true, pid, nil
}

// lockHolder is the row's holder while a session holds the lock.
func (b *pgBackend) lockHolder() (*LockInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.s.openTimeout)
	defer cancel()
	var held bool
	err := b.retry(ctx, func(ctx context.Context) error {
		var err error
		held, _, err = b.lockHeld(ctx)
		return err
	})
	if err != nil || !held {
		return nil, err
	}
	h, err := b.lockRow(ctx)
	if h == nil && err == nil {
		h = &LockInfo{Operation: "(starting)", Created: time.Now().UTC()}
	}
	return h, err
}

// forceUnlock ends the holder's session when it still holds the lock (its
// process hangs, say), then removes the row, and records it in history.
func (b *pgBackend) forceUnlock(s *Store, id string) (*LockInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.s.openTimeout)
	defer cancel()
	cur, err := b.lockRow(ctx)
	if err != nil {
		return nil, err
	}
	held, pid, err := b.lockHeld(ctx)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		if held {
			return nil, errors.New("the lock's holder has not recorded itself yet; try again")
		}
		return nil, errors.New("the state is not locked")
	}
	if cur.ID != id {
		return nil, fmt.Errorf("%w: the lock is held by %s", ErrLockMismatch, cur.String())
	}
	if held {
		if _, err := b.pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			return nil, b.fail("force-unlock", err)
		}
		for held {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%s: force-unlock: the holder's session did not end", b.describe())
			case <-time.After(20 * time.Millisecond):
			}
			if held, _, err = b.lockHeld(ctx); err != nil {
				return nil, err
			}
		}
	}
	err = s.Update(func(tx *Tx) error {
		if _, err := tx.kv.(*pgKV).tx.Exec(ctx, "DELETE FROM "+b.table("locks")+" WHERE workspace = $1 AND id = $2", b.ws, id); err != nil {
			return err
		}
		return tx.AppendHistory(&Event{Operation: "force-unlock", Detail: "removed lock of " + cur.String()})
	})
	return cur, err
}
