package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/state"
)

// RecordNamespace and RecordKey locate the serve record in the state's
// data namespaces.
const (
	RecordNamespace = "serve"
	RecordKey       = "record"
	// addressKey keeps the gRPC address the latest control plane of the
	// state file listened on. Unlike the record, it outlives a clean stop:
	// the next control plane listens there again (components were told
	// it), unless it is taken.
	addressKey = "address"
)

// Record says which process serves a state file's control plane, and
// where. Run writes it once it listens and removes it when it stops
// cleanly; a killed serve leaves it behind, which Alive tells apart.
type Record struct {
	// Process is the serving process (pid and start time: a reused pid is
	// never taken for it).
	Process procinfo.Identity `json:"process"`
	// Host is the machine it runs on; Alive can only check processes of
	// this one.
	Host      string    `json:"host"`
	StartedAt time.Time `json:"started_at"`
	// RunID tells apart two control planes run by one process.
	RunID string `json:"run_id"`
	Addrs
	AuthMode controlplane.AuthMode `json:"auth_mode"`
}

// Alive reports whether the recorded process still runs (on this host).
func (r *Record) Alive() bool {
	if r == nil {
		return false
	}
	if h, _ := os.Hostname(); h != r.Host {
		return false
	}
	return procinfo.Alive(r.Process)
}

// Endpoint is the address a component on this host dials to reach the
// gRPC listener: the bound address, with a wildcard host (0.0.0.0, ::)
// replaced by loopback.
func (r *Record) Endpoint() string { return DialAddr(r.GRPC) }

// HTTPEndpoint is Endpoint for the HTTP listener ("" when there is none).
func (r *Record) HTTPEndpoint() string { return DialAddr(r.HTTP) }

// DialAddr turns a bound address into one a local client can dial: a
// wildcard host becomes 127.0.0.1 (or ::1).
func DialAddr(bound string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// RunningError is returned by Run when a live control plane already serves
// the state file.
type RunningError struct{ Record Record }

func (e *RunningError) Error() string {
	return fmt.Sprintf("a control plane already serves this state file: pid %d since %s, gRPC %s",
		e.Record.Process.PID, e.Record.StartedAt.Local().Format(time.RFC3339), e.Record.GRPC)
}

// ReadRecord returns the serve record of store, alive or not; nil when
// there is none.
func ReadRecord(store *state.Store) (*Record, error) {
	var rec *Record
	err := store.View(func(tx *state.Tx) error {
		var err error
		rec, err = getRecord(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the serve record: %w", err)
	}
	return rec, nil
}

// Running returns the record of the control plane serving store, or nil
// when none is (no record, or its process is gone).
func Running(store *state.Store) (*Record, error) {
	rec, err := ReadRecord(store)
	if err != nil || !rec.Alive() {
		return nil, err
	}
	return rec, nil
}

// ErrExited is WaitRecord's answer when the process it waits for ended
// before it recorded itself.
var ErrExited = errors.New("the control plane process exited before it recorded itself")

// WaitRecord waits until the state holds the record of a live control
// plane run by process pid (any process when pid is 0) and returns it: a
// caller that started `flowctl serve --state X` learns from it where the
// child listens. It gives up when ctx ends, or with ErrExited when exited
// (closed when the child ends; nil when the caller does not watch it) is
// closed first. A record that cannot be read yet is looked at again: the
// child replaces a damaged one when it starts.
func WaitRecord(ctx context.Context, store *state.Store, pid int, exited <-chan struct{}) (*Record, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var lastErr error
	for {
		rec, err := Running(store)
		if err == nil && rec != nil && (pid == 0 || rec.Process.PID == pid) {
			return rec, nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-exited:
			return nil, ErrExited
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("wait for the control plane to start: %w (last read: %v)", ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("wait for the control plane to start: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func getRecord(tx *state.Tx) (*Record, error) {
	v := tx.GetData(RecordNamespace, RecordKey)
	if v == nil {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode the serve record: %w", err)
	}
	return &r, nil
}

// claimRecord writes this process's record, unless a live control plane
// already has one (checked and written in one transaction, so that of two
// serves started together one wins). A record left by a dead one is
// replaced.
func claimRecord(store *state.Store, addrs Addrs, mode controlplane.AuthMode) (Record, error) {
	self, err := procinfo.Self()
	if err != nil {
		return Record{}, fmt.Errorf("serve: identify this process: %w", err)
	}
	host, _ := os.Hostname()
	var id [8]byte
	_, _ = rand.Read(id[:])
	rec := Record{Process: self, Host: host, StartedAt: time.Now().UTC(), RunID: hex.EncodeToString(id[:]), Addrs: addrs, AuthMode: mode}
	v, err := json.Marshal(&rec)
	if err != nil {
		return Record{}, err
	}
	err = store.Update(func(tx *state.Tx) error {
		old, err := getRecord(tx)
		if err == nil && old.Alive() {
			return &RunningError{Record: *old}
		}
		// An unreadable record is overwritten: it names nothing usable.
		if err := tx.PutData(RecordNamespace, addressKey, []byte(addrs.GRPC)); err != nil {
			return err
		}
		return tx.PutData(RecordNamespace, RecordKey, v)
	})
	if err != nil {
		var re *RunningError
		if errors.As(err, &re) {
			return Record{}, err
		}
		return Record{}, fmt.Errorf("serve: write the serve record: %w", err)
	}
	return rec, nil
}

// LastAddress is the gRPC address the latest control plane of store
// listened on ("" when none ever did).
func LastAddress(store *state.Store) (string, error) {
	var addr string
	err := store.View(func(tx *state.Tx) error {
		addr = string(tx.GetData(RecordNamespace, addressKey))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read the control plane's address: %w", err)
	}
	return addr, nil
}

// removeRecord deletes rec from the state if it is still the one there.
func removeRecord(store *state.Store, rec Record) error {
	return store.Update(func(tx *state.Tx) error {
		cur, err := getRecord(tx)
		if err != nil || cur == nil || cur.RunID != rec.RunID {
			return nil
		}
		return tx.DeleteData(RecordNamespace, RecordKey)
	})
}
