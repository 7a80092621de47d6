package apply

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Ports FreePort picks from when the kernel's ephemeral range cannot be
// read: Linux's default range starts at 32768.
const (
	portFloor        = 10000
	defaultEphemeral = 32768
)

// portClaimTTL is how long a port FreePort handed out stays reserved for
// the component it was given to: time enough to start and bind it.
const portClaimTTL = 2 * time.Minute

// FreePort returns a TCP port that is free on 127.0.0.1, picked at random
// below the kernel's ephemeral port range (net.ipv4.ip_local_port_range).
//
// A port is free when nothing listens on it, but the component it is given
// to binds it only later, so two things guard that window. A port from the
// ephemeral range — what listening on port 0 gives — is also handed to
// outgoing connections (the health probes' own, one per check), so it is
// not used. And every port handed out is claimed for portClaimTTL by a file
// in a folder shared by every flowctl of this user on this machine, so that
// two applies running at once never give out the same port.
func FreePort() (int, error) {
	low := ephemeralLow()
	claims := filepath.Join(os.TempDir(), "flowctl-ports-"+strconv.Itoa(os.Getuid()))
	if err := os.MkdirAll(claims, 0o700); err != nil {
		return 0, fmt.Errorf("port claims: %w", err)
	}
	for range 200 {
		p := portFloor + rand.IntN(low-portFloor)
		if !claim(filepath.Join(claims, strconv.Itoa(p))) {
			continue
		}
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			if err := l.Close(); err != nil {
				return 0, err
			}
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port between %d and %d", portFloor, low)
}

// claim creates the claim file path, or takes it over when its claim has
// expired; false when another claim on it holds.
func claim(path string) bool {
	for range 2 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			return f.Close() == nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return false
		}
		fi, err := os.Stat(path)
		if err != nil || time.Since(fi.ModTime()) < portClaimTTL {
			return false
		}
		_ = os.Remove(path)
	}
	return false
}

// ephemeralLow is the first port of the ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeral
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return defaultEphemeral
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= portFloor+1000 {
		return defaultEphemeral
	}
	return low
}
