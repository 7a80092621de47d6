package state

import (
	"path/filepath"
	"testing"
)

func TestTokenGenerationStartsAtOneAndBumpMovesTheSerial(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "p.state.db"), "p")
	if err != nil {
		t.Fatal(err)
	}
	var m Meta
	_ = s.View(func(tx *Tx) error { m = tx.Meta(); return nil })
	if m.TokenGeneration != 1 {
		t.Fatalf("initial generation %d", m.TokenGeneration)
	}
	var gen uint64
	if err := s.Update(func(tx *Tx) error { var err error; gen, err = tx.BumpTokenGeneration(); return err }); err != nil {
		t.Fatal(err)
	}
	var after Meta
	_ = s.View(func(tx *Tx) error { after = tx.Meta(); return nil })
	if gen != 2 || after.TokenGeneration != 2 || after.Serial != m.Serial+1 {
		t.Fatalf("after a bump: gen %d meta %+v (before %+v)", gen, after, m)
	}
}
