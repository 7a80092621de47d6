//go:build linux

package attest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// LookupSocket finds the TCP socket whose local end is local and remote
// end remote by asking the kernel for exactly that socket (sock_diag over
// netlink): one lookup in its hash table, where reading /proc/net/tcp
// walks all of it. Without netlink (a kernel or sandbox without
// sock_diag) it falls back to FindSocket.
func LookupSocket(local, remote netip.AddrPort) (Socket, error) {
	local, remote = unmapPort(local), unmapPort(remote)
	if !remote.IsValid() {
		return FindSocket(TCPTables, local, remote)
	}
	s, err := diagLookup(local, remote)
	if err == nil || errors.Is(err, ErrNoSocket) {
		return s, err
	}
	return FindSocket(TCPTables, local, remote)
}

// Sizes of the kernel's structs (linux/inet_diag.h).
const (
	sizeofSockID = 48 // sport, dport, src[4], dst[4], if, cookie[2]
	sizeofReqV2  = 8 + sizeofSockID
	sizeofMsg    = 4 + sizeofSockID + 20
)

// diagLookup asks for one socket, as IPv4 and then as an IPv4-mapped IPv6
// socket (a dual-stack client), or as IPv6.
func diagLookup(local, remote netip.AddrPort) (Socket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return Socket{}, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Socket{}, fmt.Errorf("sock_diag: %w", err)
	}
	families := []uint8{unix.AF_INET6}
	if local.Addr().Is4() && remote.Addr().Is4() {
		families = []uint8{unix.AF_INET, unix.AF_INET6}
	}
	for i, fam := range families {
		s, err := diagAsk(fd, uint32(i+1), fam, local, remote)
		if errors.Is(err, ErrNoSocket) {
			continue
		}
		return s, err
	}
	return Socket{}, ErrNoSocket
}

func diagAsk(fd int, seq uint32, family uint8, local, remote netip.AddrPort) (Socket, error) {
	req := make([]byte, unix.SizeofNlMsghdr+sizeofReqV2)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], seq)
	b := req[unix.SizeofNlMsghdr:]
	b[0], b[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(b[4:], 0xffffffff) // every state
	putSockID(b[8:], family, local, remote)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Socket{}, fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return Socket{}, fmt.Errorf("sock_diag: %w", err)
	}
	return parseDiagReply(buf[:n], local, remote)
}

// putSockID writes an inet_diag_sockid: ports and addresses in network
// order, no interface, no cookie.
func putSockID(b []byte, family uint8, local, remote netip.AddrPort) {
	binary.BigEndian.PutUint16(b[0:], local.Port())
	binary.BigEndian.PutUint16(b[2:], remote.Port())
	putAddr(b[4:20], family, local.Addr())
	putAddr(b[20:36], family, remote.Addr())
	binary.NativeEndian.PutUint32(b[36:], 0)
	binary.NativeEndian.PutUint32(b[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	binary.NativeEndian.PutUint32(b[44:], 0xffffffff)
}

func putAddr(b []byte, family uint8, a netip.Addr) {
	if family == unix.AF_INET {
		a4 := a.As4()
		copy(b, a4[:])
		return
	}
	a16 := a.As16() // an IPv4 address as ::ffff:a.b.c.d
	copy(b, a16[:])
}

// parseDiagReply reads the answer: one inet_diag_msg, or an error
// message (ENOENT: no such socket).
func parseDiagReply(buf []byte, local, remote netip.AddrPort) (Socket, error) {
	ne := binary.NativeEndian
	if len(buf) < unix.SizeofNlMsghdr {
		return Socket{}, errors.New("sock_diag: short reply")
	}
	typ := ne.Uint16(buf[4:])
	body := buf[unix.SizeofNlMsghdr:]
	switch typ {
	case unix.NLMSG_ERROR:
		if len(body) < 4 {
			return Socket{}, errors.New("sock_diag: short error")
		}
		errno := -int32(ne.Uint32(body))
		if syscall.Errno(errno) == unix.ENOENT {
			return Socket{}, ErrNoSocket
		}
		return Socket{}, fmt.Errorf("sock_diag: %w", syscall.Errno(errno))
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return Socket{}, fmt.Errorf("sock_diag: unexpected reply type %d", typ)
	}
	if len(body) < sizeofMsg {
		return Socket{}, errors.New("sock_diag: short message")
	}
	off := 4 + sizeofSockID + 8 // after family..retrans, id, expires, rqueue
	return Socket{
		Local: local, Remote: remote,
		State: body[1],
		UID:   ne.Uint32(body[off+4:]),
		Inode: uint64(ne.Uint32(body[off+8:])),
	}, nil
}
