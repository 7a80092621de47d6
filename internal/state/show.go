package state

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteJSON writes r as indented JSON, as `flowctl state show -json` prints
// it.
func (r *Record) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the record of %s: %w", r.Address, err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteText writes r for a person: one "field  value" line each, then the
// recorded spec as indented JSON.
func (r *Record) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	status := r.Status
	if r.StatusReason != "" {
		status += " (" + r.StatusReason + ")"
	}
	fmt.Fprintf(tw, "address\t%s\n", r.Address)
	fmt.Fprintf(tw, "executor\t%s\n", r.Provider)
	fmt.Fprintf(tw, "status\t%s\n", status)
	fmt.Fprintf(tw, "spec hash\t%s\n", r.SpecHash)
	fmt.Fprintf(tw, "instance\t%s\n", r.InstanceID)
	for _, name := range []string{"PORT", "HEALTH_PORT"} {
		if p := r.Ports[name]; p != 0 {
			fmt.Fprintf(tw, "%s\t%d\n", name, p)
		}
	}
	fmt.Fprintf(tw, "handle\t%s\n", r.Handle)
	if !r.StartedAt.IsZero() {
		fmt.Fprintf(tw, "started\t%s\n", r.StartedAt.Local().Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintf(tw, "restarts\t%d\n", r.RestartCount)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Spec) == 0 {
		return nil
	}
	var pretty any
	if json.Unmarshal(r.Spec, &pretty) != nil {
		return nil
	}
	b, err := json.MarshalIndent(pretty, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "spec:\n%s\n", b)
	return err
}
