package images

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one cached image as `flowctl images list` shows it.
type Row struct {
	Digest     string    `json:"digest"`
	References []string  `json:"references"`
	Source     string    `json:"source"`
	Size       int64     `json:"size"`
	Extracted  time.Time `json:"extracted"`
	Path       string    `json:"path"`
	InUse      bool      `json:"in_use"`
}

// Rows lists the cache's images, each marked in use when a running process
// executes a binary of it.
func (s *Store) Rows() ([]Row, error) {
	list, err := s.List()
	if err != nil {
		return nil, err
	}
	used := s.InUse()
	rows := make([]Row, 0, len(list))
	for _, img := range list {
		rows = append(rows, Row{Digest: img.Digest, References: img.References, Source: img.Source, Size: img.Size, Extracted: img.Extracted, Path: img.Root, InUse: used[img.Digest]})
	}
	return rows, nil
}

// WriteRows writes rows as indented JSON, or as a table for a person.
func WriteRows(w io.Writer, rows []Row, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIGEST\tREFERENCE\tSIZE\tIN USE\tEXTRACTED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", r.Digest[:min(len(r.Digest), 19)], strings.Join(r.References, ","), humanSize(r.Size), r.InUse, r.Extracted.Format(time.RFC3339))
	}
	return tw.Flush()
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
