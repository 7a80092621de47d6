//go:build linux

package attest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// Socket is one row of /proc/net/tcp or /proc/net/tcp6.
type Socket struct {
	Local, Remote netip.AddrPort
	// State is the kernel's TCP state (1: established, 10: listen).
	State uint8
	UID   uint32
	// Inode is the socket's inode: /proc/PID/fd/N of a process holding it
	// links to "socket:[Inode]". 0 for sockets no process holds
	// (TIME_WAIT).
	Inode uint64
}

// ErrNoSocket: no socket has the addresses asked for.
var ErrNoSocket = errors.New("no such TCP socket")

// TCPTables are the kernel's socket tables read by FindSocket, in the
// network namespace of the process that reads them.
var TCPTables = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// FindSocket finds the TCP socket whose local end is local and, when
// remote is valid, whose remote end is remote: the client side of a
// connection a server accepted from local. IPv4 addresses match their
// IPv4-mapped IPv6 form (a dual-stack client socket).
func FindSocket(tables []string, local, remote netip.AddrPort) (Socket, error) {
	local = unmapPort(local)
	remote = unmapPort(remote)
	for _, path := range tables {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return Socket{}, fmt.Errorf("read %s: %w", path, err)
		}
		s, err := scanTable(f, func(s *Socket) bool {
			return s.Local == local && (!remote.IsValid() || s.Remote == remote)
		})
		_ = f.Close()
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, ErrNoSocket) {
			return Socket{}, fmt.Errorf("read %s: %w", path, err)
		}
	}
	return Socket{}, ErrNoSocket
}

// ParseTCPTable parses every row of a /proc/net/tcp or tcp6 table.
func ParseTCPTable(r io.Reader) ([]Socket, error) {
	var out []Socket
	_, err := scanTable(r, func(s *Socket) bool { out = append(out, *s); return false })
	if errors.Is(err, ErrNoSocket) {
		err = nil
	}
	return out, err
}

// scanTable parses rows until match says yes.
func scanTable(r io.Reader, match func(*Socket) bool) (Socket, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		s, err := parseRow(string(line))
		if err != nil {
			return Socket{}, err
		}
		if match(&s) {
			return s, nil
		}
	}
	if err := sc.Err(); err != nil {
		return Socket{}, err
	}
	return Socket{}, ErrNoSocket
}

// parseRow parses "sl local rem st tx:rx tr:when retr uid timeout inode …".
func parseRow(line string) (Socket, error) {
	f := strings.Fields(line)
	if len(f) < 10 {
		return Socket{}, fmt.Errorf("malformed socket row %q", line)
	}
	var s Socket
	var err error
	if s.Local, err = parseHexAddr(f[1]); err != nil {
		return Socket{}, fmt.Errorf("socket row %q: local address: %w", line, err)
	}
	if s.Remote, err = parseHexAddr(f[2]); err != nil {
		return Socket{}, fmt.Errorf("socket row %q: remote address: %w", line, err)
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return Socket{}, fmt.Errorf("socket row %q: state: %w", line, err)
	}
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return Socket{}, fmt.Errorf("socket row %q: uid: %w", line, err)
	}
	ino, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return Socket{}, fmt.Errorf("socket row %q: inode: %w", line, err)
	}
	s.State, s.UID, s.Inode = uint8(st), uint32(uid), ino
	return s, nil
}

// parseHexAddr parses "0100007F:1F90" (IPv4) or 32 hex digits and a port
// (IPv6). The kernel prints each 32-bit word of the address in the
// machine's byte order, and the port as a number.
func parseHexAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port: %w", s, err)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("%q: not an address", s)
	}
	var b [16]byte
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	var a netip.Addr
	if len(raw) == 4 {
		a = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		a = netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

func unmapPort(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// HoldsSocket says whether process pid has a descriptor on the socket
// inode. A process it cannot read (another user's) holds nothing it can
// see.
func HoldsSocket(pid int, inode uint64) (bool, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return false, nil
		}
		return false, err
	}
	defer d.Close()
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for {
		names, err := d.Readdirnames(64)
		for _, n := range names {
			if link, lerr := os.Readlink(dir + "/" + n); lerr == nil && link == want {
				return true, nil
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, nil // the process ended while being read
		}
	}
}

// Children lists the children of pid, from /proc/PID/task/*/children, or
// by the parent pid of every process when the kernel has no such file
// (built without CONFIG_PROC_CHILDREN).
func Children(pid int) ([]int, error) {
	if !haveChildrenFiles() {
		return childrenByParent(pid)
	}
	return childrenFromTasks(pid)
}

// haveChildrenFiles says whether /proc/PID/task/TID/children exists.
func haveChildrenFiles() bool {
	self := strconv.Itoa(os.Getpid())
	_, err := os.Stat("/proc/" + self + "/task/" + self + "/children")
	return err == nil
}

// childrenByParent scans every process for those whose parent is pid.
func childrenByParent(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := procinfo.ReadStat(p); err == nil && st.PPID == pid {
			out = append(out, p)
		}
	}
	return out, nil
}

func childrenFromTasks(pid int) ([]int, error) {
	base := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(base + "/" + t.Name() + "/children")
		if err != nil {
			continue // the thread ended
		}
		kids, err := parseChildren(string(b))
		if err != nil {
			return nil, err
		}
		out = append(out, kids...)
	}
	return out, nil
}

func parseChildren(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("malformed children list %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// maxTree bounds the processes Tree returns: a component that forks
// without end must not make a call to the control plane walk it forever.
const maxTree = 4096

// Tree is root and its descendants, root first, breadth first.
func Tree(root int) []int {
	out := []int{root}
	for i := 0; i < len(out) && len(out) < maxTree; i++ {
		kids, err := Children(out[i])
		if err != nil {
			continue
		}
		out = append(out, kids...)
	}
	return out
}
