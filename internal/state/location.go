package state

import (
	"errors"
	"fmt"
	"os"
)

// Location says where a state is kept: a file, or a workspace of a
// PostgreSQL database.
type Location struct {
	// Path is the state file. For a database it is the file the state
	// would have on this machine, beside which flowctl keeps what is local
	// to the machine (logs, the control plane's secrets); nothing is
	// written at Path itself.
	Path string
	// PG is the database; nil for a file.
	PG *PGConfig
}

// Backend names the location's backend: "file" or "pg".
func (l Location) Backend() string {
	if l.PG != nil {
		return "pg"
	}
	return "file"
}

// BackendSettings are a backend block as the pipeline file gives it; the
// environment fills what it leaves out (Locate).
type BackendSettings struct {
	Type, ConnStr, Schema, Workspace string
}

// The environment of the state backend. FLOWCTL_BACKEND chooses it when the
// pipeline has no backend block; the others fill what the block leaves
// out. PG_CONN_STR is the name libpq-minded tools use.
const (
	EnvBackend          = "FLOWCTL_BACKEND"
	EnvBackendConnStr   = "FLOWCTL_BACKEND_CONN_STR"
	EnvPGConnStr        = "PG_CONN_STR"
	EnvBackendSchema    = "FLOWCTL_BACKEND_SCHEMA_NAME"
	EnvBackendWorkspace = "FLOWCTL_BACKEND_WORKSPACE"
)

// Locate is the location of a state: block (nil: none) over getenv's
// environment (os.Getenv when nil). path is the state file (the file
// backend's, or the local one of a database's).
func Locate(path string, block *BackendSettings, getenv func(string) string) (Location, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var b BackendSettings
	if block != nil {
		b = *block
	}
	if b.Type == "" {
		b.Type = getenv(EnvBackend)
	}
	switch b.Type {
	case "", "file":
		return Location{Path: path}, nil
	case "pg":
	default:
		return Location{}, fmt.Errorf("state backend %q is not one flowctl knows (%s): file or pg", b.Type, EnvBackend)
	}
	pg := &PGConfig{ConnStr: b.ConnStr, Schema: b.Schema, Workspace: b.Workspace}
	for _, f := range []struct {
		dst  *string
		envs []string
	}{
		{&pg.ConnStr, []string{EnvBackendConnStr, EnvPGConnStr}},
		{&pg.Schema, []string{EnvBackendSchema}},
		{&pg.Workspace, []string{EnvBackendWorkspace}},
	} {
		for _, e := range f.envs {
			if *f.dst == "" {
				*f.dst = getenv(e)
			}
		}
	}
	if pg.ConnStr == "" {
		return Location{}, errors.New("the pg state backend has no connection string: set the backend block's conn_str, or " + EnvPGConnStr)
	}
	return Location{Path: path, PG: pg}, nil
}

// Env is the environment that makes Locate, in another flowctl process
// (the control plane flowctl starts), find this location whatever the
// pipeline file says. It holds the connection string: it is for a child's
// environment, never for its arguments or a log.
func (l Location) Env() []string {
	if l.PG == nil {
		return []string{EnvBackend + "=file"}
	}
	return []string{
		EnvBackend + "=pg",
		EnvBackendConnStr + "=" + l.PG.ConnStr,
		EnvBackendSchema + "=" + l.PG.Schema,
		EnvBackendWorkspace + "=" + l.PG.Workspace,
	}
}

// OpenAt opens the state at loc: Open for a file, OpenPG for a database.
func OpenAt(loc Location, pipeline string, opts ...Option) (*Store, error) {
	if loc.PG == nil {
		return Open(loc.Path, pipeline, opts...)
	}
	return OpenPG(*loc.PG, loc.Path, pipeline, opts...)
}

// Identity names the state's backend and, for a database, its workspace
// and schema, alike on every machine: what a saved plan records of the
// state it was made against.
func (s *Store) Identity() string {
	if l := s.Location(); l.PG != nil {
		return fmt.Sprintf("pg workspace %q (schema %s)", l.PG.Workspace, l.PG.Schema)
	}
	return "a state file"
}

// Where names the state for a person: the file's path, or the database's
// workspace, schema and server (never a password).
func (s *Store) Where() string { return s.be.location() }

// Location is where the store's state is kept.
func (s *Store) Location() Location {
	if s.loc.Path == "" {
		return Location{Path: s.path}
	}
	return s.loc
}

// Restorable says whether `state restore` applies to the state at path
// that block (nil: none) and the environment locate: only a file has
// backups to restore.
func Restorable(path string, block *BackendSettings) error {
	loc, err := Locate(path, block, nil)
	if err != nil || loc.PG == nil {
		return err
	}
	return errors.New("the state of this pipeline is in PostgreSQL, which keeps no .backup file to restore: use the database's own backups (pg_dump), or `flowctl state migrate`")
}
