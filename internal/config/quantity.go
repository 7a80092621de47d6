package config

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// ParseCPU parses a Kubernetes-style CPU quantity ("500m", "0.5", "2") into
// millicores.
func ParseCPU(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty CPU quantity")
	}
	scale := new(big.Rat).SetInt64(1000)
	num := s
	if strings.HasSuffix(s, "m") {
		scale.SetInt64(1)
		num = strings.TrimSuffix(s, "m")
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || r.Sign() < 0 || strings.ContainsAny(num, "/eE") {
		return 0, fmt.Errorf("invalid CPU quantity %q: want cores (\"0.5\", \"2\") or millicores (\"500m\")", s)
	}
	r.Mul(r, scale)
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid CPU quantity %q: finer than one millicore", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("invalid CPU quantity %q: too large", s)
	}
	return r.Num().Int64(), nil
}

var memorySuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseMemory parses a Kubernetes-style memory quantity ("256Mi", "1G",
// "1048576") into bytes.
func ParseMemory(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty memory quantity")
	}
	mult := int64(1)
	num := s
	for _, sf := range memorySuffixes {
		if strings.HasSuffix(s, sf.suffix) {
			mult, num = sf.mult, strings.TrimSuffix(s, sf.suffix)
			break
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || r.Sign() < 0 || strings.ContainsAny(num, "/eE") {
		return 0, fmt.Errorf("invalid memory quantity %q: want bytes with an optional suffix (Ki, Mi, Gi, Ti, K, M, G, T)", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid memory quantity %q: not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() || r.Num().Int64() > math.MaxInt64/2 {
		return 0, fmt.Errorf("invalid memory quantity %q: too large", s)
	}
	return r.Num().Int64(), nil
}

// FormatCPU renders millicores the way a user would write them.
func FormatCPU(milli int64) string {
	if milli%1000 == 0 {
		return fmt.Sprintf("%d", milli/1000)
	}
	return fmt.Sprintf("%dm", milli)
}

// FormatMemory renders bytes with the largest binary suffix that divides them.
func FormatMemory(b int64) string {
	for _, sf := range []struct {
		s string
		m int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if b >= sf.m && b%sf.m == 0 {
			return fmt.Sprintf("%d%s", b/sf.m, sf.s)
		}
	}
	return fmt.Sprintf("%d", b)
}
