package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// CanonicalJSON is the component's desired spec as canonical JSON: fixed field
// order, sorted map keys, defaults filled in, no source positions. It includes
// sensitive values, so it is hashed, never printed.
func (c *Component) CanonicalJSON() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		// Every field is a plain value; marshalling cannot fail.
		panic(fmt.Sprintf("config: marshal component %s: %v", c.Address(), err))
	}
	return b
}

// SpecHash identifies the desired spec: it is stored in state and written
// on every object an executor creates (label, annotation, job meta,
// FLOWCTL_SPEC_HASH), so drift shows from either side. A component without
// sensitive values is hashed as the hex SHA-256 of its canonical JSON,
// which says nothing its printed spec does not. One with sensitive values
// is hashed with key (HMAC-SHA256), so that no one without the key can test
// a guess of a value against the hash; key must then not be nil.
func (c *Component) SpecHash(key *SpecKey) string {
	canonical := c.CanonicalJSON()
	if !c.HasSensitive() {
		return unkeyedHash(canonical)
	}
	if key == nil {
		// Callers load the key whenever the pipeline has sensitive values
		// (Pipeline.NeedsSpecKey); hashing them unkeyed would print a
		// guessable digest.
		panic(fmt.Sprintf("config: spec hash of %s, which has sensitive values, without a key", c.Address()))
	}
	return key.sum(canonical)
}

// SpecHashAndRedacted returns c.SpecHash(key) and the canonical JSON of
// c.Redacted(), encoding c once when it has no sensitive values (the
// redacted spec is then the canonical JSON the hash is taken of).
func (c *Component) SpecHashAndRedacted(key *SpecKey) (string, []byte) {
	if c.HasSensitive() {
		return c.SpecHash(key), c.Redacted().CanonicalJSON()
	}
	canonical := c.CanonicalJSON()
	return unkeyedHash(canonical), canonical
}

// UnkeyedSpecHash is the hash flowctl before keyed spec hashes recorded for
// every component: the hex SHA-256 of the canonical JSON, sensitive values
// included. It is only ever compared with what an older state or object
// holds (a state written by that version plans no changes), never printed
// or written.
func (c *Component) UnkeyedSpecHash() string {
	return unkeyedHash(c.CanonicalJSON())
}

func unkeyedHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// CanonicalJSON is the whole pipeline as canonical JSON (see
// Component.CanonicalJSON). YAML and HCL files that say the same thing give
// identical bytes.
func (p *Pipeline) CanonicalJSON() []byte {
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("config: marshal pipeline %s: %v", p.Name, err))
	}
	return b
}

// Hash is the hex SHA-256 of the pipeline's canonical JSON, sensitive
// values included: for comparing two pipelines in memory, never to be
// stored or shown whole.
func (p *Pipeline) Hash() string {
	return unkeyedHash(p.CanonicalJSON())
}

// Redacted returns a deep copy of c with every sensitive env value replaced by
// RedactedValue, for anything that is shown or written for review.
func (c *Component) Redacted() *Component {
	var cp Component
	if err := json.Unmarshal(c.CanonicalJSON(), &cp); err != nil {
		panic(fmt.Sprintf("config: copy component %s: %v", c.Address(), err))
	}
	cp.DeclRange, cp.Ranges = c.DeclRange, c.Ranges
	for k, v := range cp.Env {
		if v.Sensitive {
			v.Value = RedactedValue
			cp.Env[k] = v
		}
	}
	return &cp
}

// HasSensitive says whether any env value of c is sensitive (its
// recorded spec is then the redacted one).
func (c *Component) HasSensitive() bool {
	for _, v := range c.Env {
		if v.Sensitive {
			return true
		}
	}
	return false
}

// RedactedValue stands in for a sensitive value wherever one would be shown.
const RedactedValue = "(sensitive value)"
