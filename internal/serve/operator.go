package serve

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// OperatorTokenFileName is the operator token flowctl creates beside the
// state file (.flowctl/operator-token).
const OperatorTokenFileName = "operator-token"

// minOperatorToken is the shortest operator token accepted from a file or
// an option.
const minOperatorToken = 16

// DefaultOperatorTokenPath is the operator token file beside a state file.
func DefaultOperatorTokenPath(statePath string) string {
	return filepath.Join(filepath.Dir(statePath), OperatorTokenFileName)
}

// operatorToken returns the token /metrics and /v1/status require off
// loopback: Options.OperatorToken, or the content of the operator token
// file (created 0600 with 32 random bytes in hex when it is the default
// file and missing).
func operatorToken(opts Options) (string, error) {
	if opts.OperatorToken != "" {
		if len(opts.OperatorToken) < minOperatorToken {
			return "", fmt.Errorf("serve: the operator token must be at least %d characters", minOperatorToken)
		}
		return opts.OperatorToken, nil
	}
	path, create := opts.OperatorTokenFile, false
	if path == "" {
		path, create = DefaultOperatorTokenPath(opts.StatePath), true
	}
	tok, err := readOperatorToken(path)
	if err == nil || !create || !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("serve: generate the operator token: %w", err)
	}
	tok = hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another flowctl created it first
			return readOperatorToken(path)
		}
		return "", fmt.Errorf("serve: create the operator token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("serve: write the operator token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("serve: write the operator token: %w", err)
	}
	return tok, nil
}

func readOperatorToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("serve: operator token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minOperatorToken {
		return "", fmt.Errorf("serve: operator token %s holds %d characters; at least %d are needed", path, len(tok), minOperatorToken)
	}
	return tok, nil
}

// requiresOperatorToken reports whether operator endpoints on a listener
// bound to addr require the operator token: on every address but a
// loopback one. A wildcard (0.0.0.0, ::) is reachable from elsewhere, so it
// requires it too, whichever interface a request comes in by.
func requiresOperatorToken(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return true
	}
	return !ta.IP.IsLoopback()
}

// checkOperator reports whether r carries "Authorization: Bearer <want>".
func checkOperator(r *http.Request, want string) bool {
	scheme, got, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return false
	}
	got = strings.TrimSpace(got)
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
