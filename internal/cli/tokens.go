package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
)

func newTokensCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Manage the secret that signs component tokens",
	}
	cmd.AddCommand(newTokensRotateCommand(g))
	return cmd
}

func newTokensRotateCommand(g *globals) *cobra.Command {
	var (
		sf         stateFlags
		secretFile string
	)
	cmd := &cobra.Command{
		Use:   "rotate [PIPELINE]",
		Short: "Replace the token secret; the next apply replaces every component holding a token of the old one",
		Long: "Writes a new random token secret (0600) and records a new secret generation in\n" +
			"the state. Tokens signed with the old secret are refused as soon as the\n" +
			"control plane reads the new one (a running serve does within seconds), and\n" +
			"the next plan replaces every component that holds one (reason token_rotated).\n" +
			"The data-plane key beside the state file is replaced too: components refuse\n" +
			"the relay's calls until that apply starts them with the new public key.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := openWorkspace(g, args, &sf, true)
			if err != nil {
				return err
			}
			l, err := lockState(cmd.Context(), g, ws, "tokens-rotate", sf.lockTimeout)
			if err != nil {
				return err
			}
			defer l.Release()
			path := secretFile
			if path == "" {
				path = tokens.DefaultSecretPath(ws.Store.Path())
			}
			if err := tokens.RotateSecretFile(path); err != nil {
				return fmt.Errorf("rotate the token secret: %w", err)
			}
			if err := tokens.RotateDataKeyFile(tokens.DefaultDataKeyPath(ws.Store.Path())); err != nil {
				return fmt.Errorf("rotate the data-plane key: %w", err)
			}
			var gen uint64
			stale := 0
			err = ws.Store.Update(func(tx *state.Tx) error {
				var err error
				if gen, err = tx.BumpTokenGeneration(); err != nil {
					return err
				}
				recs, err := tx.Components()
				for _, r := range recs {
					if r.TokenGeneration > 0 && r.TokenGeneration < gen {
						stale++
					}
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("the secret in %s is rotated, but recording it in the state failed (run the command again): %w", path, err)
			}
			fmt.Fprintf(g.streams.Out, "Token secret rotated (%s, generation %d).\n", path, gen)
			fmt.Fprintf(g.streams.Out, "Tokens signed with the previous secret are refused from now on; %d component(s) hold one.\n", stale)
			fmt.Fprintln(g.streams.Out, "Run `flowctl apply` to replace them with instances holding new tokens.")
			return nil
		},
	}
	sf.add(cmd.Flags(), true)
	cmd.Flags().StringVar(&secretFile, "token-secret-file", "", "the secret to rotate (default token-secret beside the state file)")
	return cmd
}
