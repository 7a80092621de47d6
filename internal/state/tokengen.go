package state

import "encoding/binary"

// The generation of the pipeline's token secret lives in the data
// namespace "tokens", key "generation" (8 bytes, big-endian). It starts at
// 1 and `flowctl tokens rotate` increments it.
const (
	tokensNamespace  = "tokens"
	tokenGenerationK = "generation"
)

// TokenGeneration returns the generation of the token secret that signs
// component tokens now: 1 until the first rotation. apply stamps it on each
// record it starts with a token (Record.TokenGeneration); a plan replaces
// every instance whose stamp is below it (its token was signed with a
// secret rotated since).
func (tx *Tx) TokenGeneration() uint64 {
	v := tx.GetData(tokensNamespace, tokenGenerationK)
	if len(v) != 8 {
		return 1
	}
	if g := binary.BigEndian.Uint64(v); g > 0 {
		return g
	}
	return 1
}

// BumpTokenGeneration records a rotation of the token secret and returns
// the new generation. It moves the serial: a plan made before the rotation
// did not plan the replacements it calls for, so applying it is refused.
func (tx *Tx) BumpTokenGeneration() (uint64, error) {
	g := tx.TokenGeneration() + 1
	if err := tx.PutData(tokensNamespace, tokenGenerationK, itob(g)); err != nil {
		return 0, err
	}
	tx.changed = true
	return g, nil
}
