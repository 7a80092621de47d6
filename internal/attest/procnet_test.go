//go:build linux

package attest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// hex4 renders an IPv4 address as the kernel prints it: the 32-bit word in
// the machine's byte order, as a number.
func hex4(a netip.Addr) string {
	b := a.As4()
	return strings.ToUpper(hexWord(b[:]))
}

func hexWord(b []byte) string {
	v := binary.NativeEndian.Uint32(b)
	const digits = "0123456789ABCDEF"
	out := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		out[i] = digits[v&0xf]
		v >>= 4
	}
	return string(out)
}

func TestParseTCPTableReadsAddressesStatesAndInodes(t *testing.T) {
	lo := hex4(netip.MustParseAddr("127.0.0.1"))
	ten := hex4(netip.MustParseAddr("10.1.2.3"))
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: " + lo + ":1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n" +
		"   1: " + lo + ":D431 " + lo + ":1F90 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1\n" +
		"   2: " + ten + ":0050 " + lo + ":D431 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3 0000000000000000\n"
	got, err := ParseTCPTable(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d rows: %+v", len(got), got)
	}
	want := []Socket{
		{Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: 10, UID: 1000, Inode: 4242},
		{Local: netip.MustParseAddrPort("127.0.0.1:54321"), Remote: netip.MustParseAddrPort("127.0.0.1:8080"), State: 1, UID: 1000, Inode: 777},
		{Local: netip.MustParseAddrPort("10.1.2.3:80"), Remote: netip.MustParseAddrPort("127.0.0.1:54321"), State: 6, UID: 0, Inode: 0},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseTCP6TableUnmapsIPv4(t *testing.T) {
	// ::ffff:127.0.0.1 port 40000 → ::1 port 8080, as the kernel prints
	// them (four words, each in the machine's byte order).
	mapped := netip.MustParseAddr("::ffff:127.0.0.1").As16()
	one := netip.MustParseAddr("::1").As16()
	var m, o string
	for i := 0; i < 16; i += 4 {
		m += hexWord(mapped[i : i+4])
		o += hexWord(one[i : i+4])
	}
	table := "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: " + m + ":9C40 " + o + ":1F90 01 00000000:00000000 00:00000000 00000000  1000        0 99 1 0000000000000000 20 4 1 10 -1\n"
	got, err := ParseTCPTable(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := Socket{Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: netip.MustParseAddrPort("[::1]:8080"), State: 1, UID: 1000, Inode: 99}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestParseTCPTableRejectsDamagedRows(t *testing.T) {
	for _, row := range []string{
		"   0: 0100007F 00000000:0000 0A 0:0 00:0 0 1000 0 1",
		"   0: ZZ00007F:1F90 00000000:0000 0A 0:0 00:0 0 1000 0 1",
		"   0: 0100007F:1F90 00000000:0000 0A 0:0 00:0 0 1000 0 notanumber",
		"   0: 0100007F:1F90",
	} {
		if _, err := ParseTCPTable(strings.NewReader("header\n" + row + "\n")); err == nil {
			t.Errorf("%q: no error", row)
		}
	}
}

func TestParseChildren(t *testing.T) {
	got, err := parseChildren("12 345 6789 ")
	if err != nil || len(got) != 3 || got[0] != 12 || got[2] != 6789 {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := parseChildren("12 x"); err == nil {
		t.Fatal("no error for a damaged list")
	}
}

// The real tables: a connection this process opens is found by its client
// end, its inode is held by this process, and not by its parent.
func TestFindSocketFindsTheClientEndOfALiveConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			buf := make([]byte, 1)
			_, _ = c.Read(buf)
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := c.LocalAddr().(*net.TCPAddr).AddrPort()
	server := l.Addr().(*net.TCPAddr).AddrPort()
	s, err := FindSocket(TCPTables, client, server)
	if err != nil {
		t.Fatal(err)
	}
	if s.Inode == 0 || s.Remote != server {
		t.Fatalf("socket %+v", s)
	}
	d, err := diagLookup(client, server)
	if err != nil || d.Inode != s.Inode {
		t.Fatalf("sock_diag found %+v (%v), the tables %+v", d, err, s)
	}
	if _, err := diagLookup(client, netip.MustParseAddrPort("127.0.0.1:1")); err != ErrNoSocket {
		t.Fatalf("sock_diag: a wrong remote end: %v", err)
	}
	if ok, err := HoldsSocket(os.Getpid(), s.Inode); err != nil || !ok {
		t.Fatalf("this process does not hold its own socket: %v %v", ok, err)
	}
	if ok, _ := HoldsSocket(os.Getppid(), s.Inode); ok {
		t.Fatal("the parent holds this process's socket")
	}
	// The server's end is not the client's.
	if _, err := FindSocket(TCPTables, client, netip.MustParseAddrPort("127.0.0.1:1")); err != ErrNoSocket {
		t.Fatalf("a wrong remote end matched: %v", err)
	}
}

// Both ways of finding children agree: a child this test starts is found.
func TestChildrenFindsAChildBothWays(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	byParent, err := childrenByParent(os.Getpid())
	if err != nil || !slices.Contains(byParent, cmd.Process.Pid) {
		t.Fatalf("by parent: %v %v", byParent, err)
	}
	if !haveChildrenFiles() {
		t.Skip("this kernel has no /proc/PID/task/TID/children")
	}
	fromTasks, err := childrenFromTasks(os.Getpid())
	if err != nil || !slices.Contains(fromTasks, cmd.Process.Pid) {
		t.Fatalf("from tasks: %v %v", fromTasks, err)
	}
	if tree := Tree(os.Getpid()); !slices.Contains(tree, cmd.Process.Pid) {
		t.Fatalf("tree %v", tree)
	}
}
