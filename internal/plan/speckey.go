package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/flowctl/flowctl/internal/config"
)

// errNoSpecKey: a pipeline with sensitive values was planned without the
// key their spec hashes need (config.SpecKey); the caller loads it.
var errNoSpecKey = errors.New("plan: the pipeline has sensitive values and no spec hash key was given to hash them (a flowctl bug)")

// checkSpecKey refuses to plan sensitive values without a key: hashing
// them unkeyed would print a digest anyone can test guesses against.
func checkSpecKey(in Input) error {
	if in.Desired == nil {
		return nil
	}
	if in.SpecKey == nil && in.Desired.NeedsSpecKey() {
		return errNoSpecKey
	}
	return checkKeyOfRecords(in)
}

// checkKeyOfRecords refuses to plan when state records spec hashes of
// desired components made with another key than in.SpecKey (the state was
// applied from another machine, whose .flowctl/spec-hash-key this one
// lacks): every such component would otherwise look changed, and be
// replaced.
func checkKeyOfRecords(in Input) error {
	ours := ""
	if in.SpecKey != nil {
		ours = in.SpecKey.ID()
	}
	var theirs []string
	for _, r := range in.Records {
		id := config.SpecHashKeyID(r.SpecHash)
		if id == "" || id == ours || in.Desired.Component(r.Address) == nil {
			continue
		}
		theirs = append(theirs, r.Address+" (key "+id+")")
	}
	if len(theirs) == 0 {
		return nil
	}
	mine := "there is none"
	if ours != "" {
		mine = "it is key " + ours
	}
	return fmt.Errorf("state records the spec hashes of %s with another spec hash key than this machine's (%s): use the %s file of the machine that applied them, in the state's folder, and plan again",
		strings.Join(theirs, ", "), mine, config.SpecKeyFileName)
}

// hashAndSpec returns c's spec hash under key and c's canonical JSON with
// sensitive values redacted.
func hashAndSpec(c *config.Component, key *config.SpecKey) (string, json.RawMessage) {
	hash, spec := c.SpecHashAndRedacted(key)
	return hash, spec
}

// hashedSpec is a component's spec hash and canonical spec, as hashAndSpec
// returns them.
type hashedSpec struct {
	key  *config.SpecKey
	hash string
	spec json.RawMessage
}

// specOf is hashAndSpec(c, key), taken from what Observe's plan check
// already computed when it did: encoding and hashing every spec twice was
// a fifth of a 10,000-component plan.
func (r *Reality) specOf(c *config.Component, key *config.SpecKey) (string, json.RawMessage) {
	if h, ok := r.specs[c]; ok && h.key == key {
		return h.hash, h.spec
	}
	return hashAndSpec(c, key)
}

// sameSpec says whether recorded, a spec hash read from state or from an
// object, is that of c, whose hash is now hash. A hash flowctl wrote before
// spec hashes were keyed (config.Component.UnkeyedSpecHash) names the same
// spec: a state or object of that version is not taken for a change, and
// nothing that runs is replaced for it. apply records the keyed hash at its
// next write of the component.
func sameSpec(c *config.Component, recorded, hash string) bool {
	if recorded == hash {
		return true
	}
	return c.HasSensitive() && recorded != "" && recorded == c.UnkeyedSpecHash()
}

// PlannedSpec says whether c is the spec a saved plan's change recorded as
// hash (plan files of either hash version).
func PlannedSpec(c *config.Component, key *config.SpecKey, hash string) bool {
	if c.HasSensitive() && key == nil {
		return false
	}
	return sameSpec(c, hash, c.SpecHash(key))
}
