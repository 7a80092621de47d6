package apply

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestFreePortIsBelowTheEphemeralRangeFreeAndNeverGivenTwice(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < portFloor || p >= low {
			t.Fatalf("port %d is outside [%d, %d)", p, portFloor, low)
		}
		if seen[p] {
			t.Fatalf("port %d given twice within its claim", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		_ = l.Close()
	}
}

func TestPortClaimHoldsUntilItExpires(t *testing.T) {
	path := filepath.Join(t.TempDir(), "12345")
	if !claim(path) {
		t.Fatal("first claim failed")
	}
	if claim(path) {
		t.Fatal("a live claim was taken again")
	}
	old := time.Now().Add(-portClaimTTL - time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if !claim(path) {
		t.Fatal("an expired claim was not taken over")
	}
}
