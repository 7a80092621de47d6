package state

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteHistory writes events as `flowctl history` prints them: indented
// JSON (an empty list, never null), or a table for a person.
func WriteHistory(w io.Writer, events []*Event, asJSON bool) error {
	if asJSON {
		if events == nil {
			events = []*Event{}
		}
		b, err := json.MarshalIndent(events, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the history: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tOPERATION\tCOMPONENT\tACTION\tREASON\tRESULT\tDETAIL")
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Operation, dash(e.Address), dash(e.Action), dash(e.Reason), dash(e.Result), e.Detail)
	}
	return tw.Flush()
}
