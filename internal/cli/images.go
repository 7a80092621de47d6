package cli

import (
	"fmt"

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
			rows, err := s.Rows()
			if err != nil {
				return err
			}
			return images.WriteRows(g.streams.Out, rows, asJSON)
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
