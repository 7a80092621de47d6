package state

import (
	"errors"
	"fmt"
	"os"
)

// Restored is what Restore put in place.
type Restored struct {
	From string
	Meta Meta
	// Replaced is the meta of the file that was replaced, when it could be
	// read; SavedAs is where that file is kept (empty when there was none).
	Replaced *Meta
	SavedAs  string
}

// LineageMismatchError refuses to restore a file of another lineage.
type LineageMismatchError struct {
	From, Path       string
	Have, WantToPut  string
	HaveSerial, Want uint64
}

func (e *LineageMismatchError) Error() string {
	return fmt.Sprintf("%s has lineage %s (serial %d), but %s has lineage %s (serial %d): it is another state's file; restore it anyway with --force",
		e.From, e.WantToPut, e.Want, e.Path, e.Have, e.HaveSerial)
}

// Restore replaces the state file at path with from (BackupPath(path) when
// from is empty). from must be a sound state file of pipeline (any, when
// pipeline is empty) and, unless force, of the lineage of the file it
// replaces, when that one can be read. The replaced file, if any, is kept as
// path + ".before-restore".
func Restore(path, from, pipeline string, force bool) (*Restored, error) {
	if from == "" {
		from = BackupPath(path)
	}
	src, err := Open(from, "", ReadOnly())
	if err != nil {
		return nil, fmt.Errorf("restore from %s: %w", from, err)
	}
	out := &Restored{From: from}
	if err := src.View(func(tx *Tx) error { out.Meta = tx.Meta(); return nil }); err != nil {
		return nil, fmt.Errorf("restore from %s: %w", from, err)
	}
	if pipeline != "" && out.Meta.Pipeline != pipeline && !force {
		return nil, fmt.Errorf("%s belongs to pipeline %q, not %q; restore it anyway with --force", from, out.Meta.Pipeline, pipeline)
	}
	// Read it now: from may be the file the replaced one is kept as.
	data, err := os.ReadFile(from)
	if err != nil {
		return nil, fmt.Errorf("restore from %s: %w", from, err)
	}
	current, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("restore %s: %w", path, err)
	}
	if len(current) > 0 {
		if cur, err := Open(path, "", ReadOnly()); err == nil {
			var m Meta
			if err := cur.View(func(tx *Tx) error { m = tx.Meta(); return nil }); err == nil {
				out.Replaced = &m
				if m.Lineage != out.Meta.Lineage && !force {
					return nil, &LineageMismatchError{From: from, Path: path, Have: m.Lineage, HaveSerial: m.Serial, WantToPut: out.Meta.Lineage, Want: out.Meta.Serial}
				}
			}
		}
		out.SavedAs = path + ".before-restore"
		if err := writeFileAtomic(out.SavedAs, current); err != nil {
			return nil, err
		}
	}
	if err := writeFileAtomic(path, data); err != nil {
		return nil, err
	}
	return out, nil
}
