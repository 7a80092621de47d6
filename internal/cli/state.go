package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/complete"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/state"
	wsp "github.com/flowctl/flowctl/internal/workspace"
)

func newStateCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Read and edit the state file",
	}
	cmd.AddCommand(newStateListCommand(g), newStateShowCommand(g), newStateRmCommand(g), newStateRestoreCommand(g), newStateMigrateCommand(g))
	return cmd
}

func newStateListCommand(g *globals) *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "list [PIPELINE]",
		Short: "List the components the state records",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sf.readOnly = true
			ws, err := openWorkspace(g, args, &sf, true)
			if err != nil {
				return err
			}
			return ws.Store.View(func(tx *state.Tx) error {
				recs, err := tx.Components()
				if err != nil {
					return err
				}
				for _, r := range recs {
					fmt.Fprintln(g.streams.Out, r.Address)
				}
				return nil
			})
		},
	}
	sf.add(cmd.Flags(), true)
	return cmd
}

func newStateShowCommand(g *globals) *cobra.Command {
	var (
		sf     stateFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show ADDR [PIPELINE]",
		Short: "Show one component's record",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sf.readOnly = true
			ws, err := openWorkspace(g, args[1:], &sf, true)
			if err != nil {
				return err
			}
			var rec *state.Record
			if err := ws.Store.View(func(tx *state.Tx) error { var err error; rec, err = tx.Component(args[0]); return err }); err != nil {
				return err
			}
			if rec == nil {
				return fmt.Errorf("%s is not in the state", args[0])
			}
			if asJSON {
				return rec.WriteJSON(g.streams.Out)
			}
			return rec.WriteText(g.streams.Out)
		},
	}
	sf.add(cmd.Flags(), true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	cmd.ValidArgsFunction = complete.AddressArgs(1)
	return cmd
}

func newStateRmCommand(g *globals) *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "rm ADDR... [--state PATH]",
		Short: "Forget components without stopping them",
		Long: "state rm removes components from the state and leaves whatever runs alone.\n" +
			"The next plan will offer to adopt them if they still match the pipeline file,\n" +
			"or to delete them as orphans.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := openWorkspace(g, nil, &sf, true)
			if err != nil {
				return err
			}
			l, err := lockState(context.Background(), g, ws, "state-rm", sf.lockTimeout)
			if err != nil {
				return err
			}
			defer l.Release()
			return ws.Store.Update(func(tx *state.Tx) error {
				for _, addr := range args {
					rec, err := tx.Component(addr)
					if err != nil {
						return err
					}
					if rec == nil {
						return fmt.Errorf("%s is not in the state", addr)
					}
					if err := tx.DeleteComponent(addr); err != nil {
						return err
					}
					if err := tx.AppendHistory(&state.Event{Operation: "state-rm", Address: addr, Result: "ok", Detail: "forgotten; the object was left running"}); err != nil {
						return err
					}
					fmt.Fprintf(g.streams.Out, "Removed %s from the state\n", addr)
				}
				return nil
			})
		},
	}
	sf.add(cmd.Flags(), true)
	return cmd
}

func newStateRestoreCommand(g *globals) *cobra.Command {
	var (
		sf    stateFlags
		from  string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "restore [PIPELINE] [--from FILE]",
		Short: "Put the state file's backup (or another copy) back",
		Long: "Before each write that changes what the state records (its serial moves), flowctl\n" +
			"keeps the previous version beside it as <state>.backup. restore puts that file,\n" +
			"or the one --from names, in place of the state file, which is kept as\n" +
			"<state>.before-restore. It refuses a file of another lineage (another state's)\n" +
			"unless --force. Use it when the state file is damaged, emptied or deleted.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, pipeline, block, err := statePathOf(g, args, &sf)
			if err != nil {
				return err
			}
			if err := state.Restorable(path, wsp.BackendSettings(block)); err != nil {
				return err
			}
			r, err := state.Restore(path, from, pipeline, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Out, "Restored %s from %s: pipeline %s, lineage %s, serial %d.\n", path, r.From, r.Meta.Pipeline, r.Meta.Lineage, r.Meta.Serial)
			if r.Replaced != nil {
				fmt.Fprintf(g.streams.Out, "It replaced serial %d of lineage %s, kept as %s.\n", r.Replaced.Serial, r.Replaced.Lineage, r.SavedAs)
			} else if r.SavedAs != "" {
				fmt.Fprintf(g.streams.Out, "The unreadable file it replaced is kept as %s.\n", r.SavedAs)
			}
			fmt.Fprintln(g.streams.Out, "Run flowctl plan to compare it with what runs.")
			return nil
		},
	}
	sf.add(cmd.Flags(), true)
	cmd.Flags().StringVar(&from, "from", "", "the file to restore (default <state>.backup)")
	cmd.Flags().BoolVar(&force, "force", false, "restore a file of another lineage or pipeline")
	return cmd
}

func newStateMigrateCommand(g *globals) *cobra.Command {
	var (
		sf stateFlags
		to string
	)
	cmd := &cobra.Command{
		Use:   "migrate --to pg|file [PIPELINE]",
		Short: "Copy the state between its file and a PostgreSQL database, keeping its lineage and serial",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, pipeline, block, err := statePathOf(g, args, &sf)
			if err != nil {
				return err
			}
			from, dst, err := state.MigrationEnds(to, path, wsp.BackendSettings(block), nil)
			if err != nil {
				return err
			}
			m, err := state.Migrate(cmd.Context(), from, dst, pipeline)
			if err != nil {
				return err
			}
			fmt.Fprint(g.streams.Out, m.Summary())
			return nil
		},
	}
	sf.add(cmd.Flags(), true)
	cmd.Flags().StringVar(&to, "to", "", "where the state goes: pg (the database of the backend block or PG_CONN_STR) or file")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// statePathOf is the state file a command names, without opening it: --state,
// or the default beside the pipeline file. pipeline is the pipeline's name,
// and block its backend block, when its file was found.
func statePathOf(g *globals, args []string, f *stateFlags) (path, pipeline string, block *config.Backend, err error) {
	file, perr := config.FindPipelineFile(".", args, config.NoteTo(g.streams.Err))
	if perr != nil {
		if f.statePath != "" {
			return f.statePath, "", nil, nil
		}
		return "", "", nil, perr
	}
	p, err := loadValidPipeline(g, file, f.vars)
	if err != nil {
		return "", "", nil, err
	}
	if f.statePath != "" {
		return f.statePath, p.Name, p.Backend, nil
	}
	return state.DefaultPath(file, p.Name), p.Name, p.Backend, nil
}
