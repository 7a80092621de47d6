package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/images"
)

// imagesCacheFlag is the -cache flag of the images commands.
type imagesCacheFlag struct{ dir string }

func (f *imagesCacheFlag) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "cache", "", "the image cache folder (default $"+images.EnvCacheDir+", else flowctl/images under the user's cache folder)")
}

func (f *imagesCacheFlag) store() (*images.Store, error) {
	dir := f.dir
	if dir == "" {
		d, err := images.DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	return images.New(dir), nil
}

func newImagesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List or prune the image cache of the process executor",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newImagesListCommand(g), newImagesPruneCommand(g))
	return cmd
}

// imageRow is one entry as `images list -json` prints it.
type imageRow struct {
	Digest     string    `json:"digest"`
	References []string  `json:"references"`
	Source     string    `json:"source"`
	Size       int64     `json:"size"`
	Extracted  time.Time `json:"extracted"`
	Path       string    `json:"path"`
	InUse      bool      `json:"in_use"`
}

func newImagesListCommand(g *globals) *cobra.Command {
	var cache imagesCacheFlag
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the images extracted for the process executor",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := cache.store()
			if err != nil {
				return err
			}
			list, err := s.List()
			if err != nil {
				return err
			}
			used := s.InUse()
			rows := make([]imageRow, 0, len(list))
			for _, img := range list {
				rows = append(rows, imageRow{Digest: img.Digest, References: img.References, Source: img.Source, Size: img.Size, Extracted: img.Extracted, Path: img.Root, InUse: used[img.Digest]})
			}
			if asJSON {
				return writeJSON(g.streams.Out, rows)
			}
			tw := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DIGEST\tREFERENCE\tSIZE\tIN USE\tEXTRACTED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", r.Digest[:min(len(r.Digest), 19)], strings.Join(r.References, ","), humanSize(r.Size), r.InUse, r.Extracted.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cache.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the entries as JSON")
	return cmd
}

func newImagesPruneCommand(g *globals) *cobra.Command {
	var cache imagesCacheFlag
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove every cached image no running component uses",
		Long: "Remove every cached image that no running process executes a binary of,\n" +
			"with the tag records that point to them and the leftovers of interrupted\n" +
			"extractions. An image removed is pulled again when a component needs it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := cache.store()
			if err != nil {
				return err
			}
			removed, err := s.Prune(s.InUse())
			for _, d := range removed {
				fmt.Fprintf(g.streams.Out, "removed %s\n", d)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Out, "%d image(s) removed\n", len(removed))
			return nil
		},
	}
	cache.add(cmd)
	return cmd
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
