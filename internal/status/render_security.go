package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteSecurity renders s as "table" (the human form) or "json".
func WriteSecurity(w io.Writer, s *Security, output string) error {
	if output == "json" {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	fmt.Fprintf(w, "Pipeline %s (state %s): what is reachable, from where\n\n", s.Pipeline, s.StateFile)
	if !s.ControlPlaneRunning {
		fmt.Fprintln(w, "Control plane: not running; it listens nowhere.")
	} else {
		fmt.Fprintf(w, "Control plane: running, auth mode %s\n", s.AuthMode)
		if g := s.DockerGateway; g != "" {
			fmt.Fprintf(w, "%s%s.\n", strings.ToUpper(g[:1]), g[1:])
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LISTENER\tADDRESS\tTLS\tREACHABLE FROM\tAUTH")
		for _, l := range s.Listeners {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Service, l.Address, yesNo(l.TLS), l.Reach, l.Auth)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(s.Ports) == 0 {
		fmt.Fprintln(w, "Component ports: none given.")
	} else {
		fmt.Fprintln(w, "Component ports:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "COMPONENT\tEXECUTOR\tPORT\tNUMBER\tBOUND TO\tREACHABLE FROM")
		for _, p := range s.Ports {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.Component, p.Executor, p.Name, p.Port, dash(strings.Join(p.BoundTo, ", ")), p.Reach)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(s.Unproven) == 0 {
		fmt.Fprintln(w, "Registrations without proof: none.")
	} else {
		fmt.Fprintln(w, "Registrations without proof (no token, not attested):")
		for _, u := range s.Unproven {
			who := u.Component
			if who == "" {
				who = "no component (from " + dash(u.RemoteAddr) + ")"
			}
			fmt.Fprintf(w, "  %s: %s\n", u.ServiceID, who)
		}
	}
	fmt.Fprintln(w)
	if len(s.Findings) == 0 {
		fmt.Fprintln(w, "Findings: none.")
		return nil
	}
	fmt.Fprintln(w, "Findings:")
	for _, f := range s.Findings {
		fmt.Fprintf(w, "  - %s\n", f)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
