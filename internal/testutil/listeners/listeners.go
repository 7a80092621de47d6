// Package listeners reads, from /proc/net/tcp and /proc/net/tcp6, the
// addresses a TCP port listens on: tests use it to check where a
// component's ports are bound, as `ss -ltn` would show.
package listeners

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// stateListen is the st column of a listening socket.
const stateListen = "0A"

// OnAddress is On for the port of the host:port address addr (a gRPC
// listen address, say).
func OnAddress(addr string) ([]netip.Addr, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("port of %s: %w", addr, err)
	}
	return On(port)
}

// On returns the local addresses of the sockets listening on port, IPv4
// and IPv6.
func On(port int) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		addrs, err := read(f, port)
		if err != nil {
			return nil, err
		}
		out = append(out, addrs...)
	}
	return out, nil
}

func read(path string, port int) ([]netip.Addr, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != stateListen {
			continue
		}
		ipHex, portHex, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		a, err := parseIP(ipHex)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, a)
	}
	return out, sc.Err()
}

// parseIP decodes the kernel's hex form: 32-bit words in host (little
// endian) order.
func parseIP(s string) (netip.Addr, error) {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, fmt.Errorf("address %q: not 4 or 16 hex bytes", s)
	}
	for i := 0; i < len(b); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(b[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap(), nil
}
