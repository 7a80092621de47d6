//go:build linux

package process

import (
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

func TestFormatAndSplitLine(t *testing.T) {
	ts := time.Date(2026, 11, 27, 12, 0, 0, 123000000, time.FixedZone("X", 3600))
	line := shim.FormatLine(ts, shim.StreamStdout, []byte("hello world"))
	if string(line) != "2026-11-27T11:00:00.123000000Z stdout hello world\n" {
		t.Fatalf("line = %q", line)
	}
	got, text, ok := splitLine(line[:len(line)-1])
	if !ok || !got.Equal(ts) || string(text) != "hello world" {
		t.Fatalf("split = %v %q %v", got, text, ok)
	}
	if _, text, ok := splitLine([]byte("garbage line")); ok || string(text) != "garbage line" {
		t.Fatalf("garbage: %q %v", text, ok)
	}
}
