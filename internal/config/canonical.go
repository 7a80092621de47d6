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

// SpecHash is the hex SHA-256 of the canonical JSON. It is stored in state and
// on every object an executor creates, so drift shows from either side.
func (c *Component) SpecHash() string {
	sum := sha256.Sum256(c.CanonicalJSON())
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

// Hash is the hex SHA-256 of the pipeline's canonical JSON.
func (p *Pipeline) Hash() string {
	sum := sha256.Sum256(p.CanonicalJSON())
	return hex.EncodeToString(sum[:])
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
