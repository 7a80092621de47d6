package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Write renders doc as "table" (the human form) or "json" (indented, or one
// line when compact).
func Write(w io.Writer, doc *Doc, output string, compact bool) error {
	if output != "json" {
		return WriteTable(w, doc)
	}
	var b []byte
	var err error
	if compact {
		b, err = json.Marshal(doc)
	} else {
		b, err = json.MarshalIndent(doc, "", "  ")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n", b)
	return nil
}

// WriteTable renders doc in the human form: the pipeline and control-plane
// lines, then one table each for components, data flows and unmanaged
// registrations.
func WriteTable(w io.Writer, doc *Doc) error {
	fmt.Fprintf(w, "Pipeline %s (state %s, serial %d)", doc.Pipeline, doc.StateFile, doc.Serial)
	if doc.ControlPlane.Needed {
		fmt.Fprint(w, ": CONTROL PLANE NOT RUNNING while components run: nothing hears them or restarts them ('flowctl apply' starts it)")
	}
	fmt.Fprintln(w)
	cp := doc.ControlPlane
	switch {
	case cp.Running:
		line := fmt.Sprintf("Control plane: running (pid %d, up %s) on %s", cp.PID, HumanDuration(doc.Time.Sub(cp.StartedAt)), strings.Join(append([]string{cp.GRPC}, cp.AlsoGRPC...), ", "))
		if cp.HTTP != "" {
			line += ", HTTP " + cp.HTTP
		}
		if cp.TLS {
			line += ", TLS"
		}
		fmt.Fprintf(w, "%s, auth %s\n", line, cp.AuthMode)
	case cp.PID != 0:
		fmt.Fprintf(w, "Control plane: not running (the last one, pid %d, ended without cleaning up); registry as last recorded\n", cp.PID)
	default:
		fmt.Fprintln(w, "Control plane: not running; registry as last recorded")
	}
	fmt.Fprintln(w)
	if len(doc.Components) == 0 {
		fmt.Fprintln(w, "No components.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tEXECUTOR\tSTATE\tHEALTH\tREGISTERED AS\tHEARTBEAT\tRESTARTS\tUPTIME\tAUTH\tDETAIL")
		for _, r := range doc.Components {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
				r.Address, dash(r.Executor), r.State, dash(string(r.Health)), registeredText(r.RegisteredAs),
				ageText(r.HeartbeatAgeSeconds), r.Restarts, uptimeText(r.UptimeSeconds), dash(r.Auth), r.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(doc.DataFlows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Data flows (moved by the relay):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FROM\tTO\tEVENTS\tBYTES\tLAST EVENT")
		for _, e := range doc.DataFlows {
			last := "-"
			if !e.LastAt.IsZero() {
				a := doc.Time.Sub(e.LastAt).Seconds()
				last = ageText(&a)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", e.From, e.To, e.Events, e.Bytes, last)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(doc.Unmanaged) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Unmanaged registrations (attributed to no component):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE ID\tPROTOCOL\tTYPE\tCLAIMED ID\tALIVE\tHEARTBEAT\tAUTH\tPEER")
		for _, u := range doc.Unmanaged {
			var age *float64
			if !u.LastHeartbeat.IsZero() {
				a := doc.Time.Sub(u.LastHeartbeat).Seconds()
				age = &a
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", u.ServiceID, u.Protocol, dash(u.Type), dash(u.ClaimedID), u.Alive, ageText(age), u.Auth, dash(u.RemoteAddr))
		}
		return tw.Flush()
	}
	return nil
}

func registeredText(rs []Registration) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.ServiceID + " (" + r.Protocol + ")"
	}
	return strings.Join(parts, ", ")
}

func ageText(secs *float64) string {
	if secs == nil {
		return "-"
	}
	return HumanDuration(time.Duration(*secs*float64(time.Second))) + " ago"
}

func uptimeText(secs *float64) string {
	if secs == nil {
		return "-"
	}
	return HumanDuration(time.Duration(*secs * float64(time.Second)))
}

// HumanDuration renders d with its two largest units: 45s, 3m12s, 2h5m, 3d4h.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
