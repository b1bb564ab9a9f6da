package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
)

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (to find [control] socket)")
	socket := fs.String("socket", "", "control socket (default: [control] socket of the config)")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sock, err := controlSocket(*cfgPath, *socket)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	resp, err := control.Call(sock, control.Request{Cmd: "status"})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	s := resp.Status
	code := 0
	for _, h := range s.Health {
		if !h.Up {
			code = 3 // something needs attention (for monitoring scripts)
		}
	}
	for _, d := range s.Spool {
		if d.Low {
			code = 3
		}
	}
	if *asJSON {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		e.Encode(s)
		return code
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	mode := string(s.Mode)
	if s.Override {
		mode += fmt.Sprintf(" (override; configured: %s)", s.ConfiguredMode)
	}
	fmt.Fprintf(w, "mode:\t%s\n", mode)
	fmt.Fprintf(w, "version:\t%s (pid %d)\n", s.Version, s.PID)
	fmt.Fprintf(w, "uptime:\t%s (since %s)\n", formatUptime(s.UptimeSeconds), s.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "in flight:\t%d\n", s.InFlight)
	fmt.Fprintf(w, "listen:\t%s\n", s.Listen)
	fmt.Fprintf(w, "config:\t%s (reloads %d, refused %d)\n", s.Config, s.Reloads, s.ReloadFailures)
	fmt.Fprintf(w, "checks:\t%s\n", strings.Join(s.Checks, ", "))
	for _, l := range s.Setup {
		fmt.Fprintf(w, "  \t%s\n", l)
	}
	if s.Quarantine != "" {
		fmt.Fprintf(w, "quarantine:\t%s\n", s.Quarantine)
	}
	w.Flush()
	if len(s.Health) > 0 {
		fmt.Fprintln(stdout, "\nneighbours:")
		w = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, h := range s.Health {
			state := "up"
			if !h.Up {
				state = "DOWN"
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", h.Kind, h.Target, state, h.Latency.Round(time.Millisecond), h.Error)
		}
		w.Flush()
	}
	if len(s.Spool) > 0 {
		fmt.Fprintln(stdout, "\nspool:")
		w = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, d := range s.Spool {
			state := "ok"
			if d.Low {
				state = "LOW (new mail deferred)"
			}
			fmt.Fprintf(w, "  %s\t%s free\t%d inodes\t%s\n", d.Dir, humanBytes(d.FreeBytes), d.FreeInodes, state)
		}
		w.Flush()
	}
	return code
}

func humanBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
