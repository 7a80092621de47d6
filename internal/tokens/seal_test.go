package tokens

import (
	"strings"
	"testing"
)

func TestSealRoundTripAndRefusals(t *testing.T) {
	s, err := NewSecret([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal([]byte(`{"API_KEY":"hunter2"}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "hunter2") || !strings.HasPrefix(sealed, sealPrefix) {
		t.Fatalf("sealed = %q", sealed)
	}
	again, _ := s.Seal([]byte(`{"API_KEY":"hunter2"}`))
	if again == sealed {
		t.Fatal("two seals of one value are identical (nonce reused)")
	}
	pt, err := s.Open(sealed)
	if err != nil || string(pt) != `{"API_KEY":"hunter2"}` {
		t.Fatalf("open = %q, %v", pt, err)
	}
	other, _ := NewSecret([]byte(strings.Repeat("o", 32)))
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("another secret opened it")
	}
	tampered := sealed[:len(sealed)-2] + "AA"
	if _, err := s.Open(tampered); err == nil {
		t.Fatal("a tampered value opened")
	}
	if _, err := s.Open("plain"); err == nil {
		t.Fatal("an unsealed value opened")
	}
}
