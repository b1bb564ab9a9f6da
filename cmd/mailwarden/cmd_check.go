package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/corpus"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/wire"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: the built-in default)")
	clientIP := fs.String("client-ip", "", "connecting client's address (default: none, i.e. a local submission)")
	clientName := fs.String("client-name", "unknown", "client's verified reverse DNS name")
	helo := fs.String("helo", "", "HELO/EHLO name")
	from := fs.String("from", "", "envelope sender (default: the From: header's address; \"<>\" for the null sender)")
	auth := fs.String("auth", "", "SASL login name, as for an authenticated client")
	queueID := fs.String("queue-id", "CHECK", "queue id to show in logs")
	var rcpts multiFlag
	fs.Var(&rcpts, "rcpt", "envelope recipient (repeatable; default: the To: and Cc: addresses)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	explain := fs.Bool("explain", false, "list every check's signals and their contributions")
	debug := fs.Bool("debug", false, "log per-check details to standard error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden check [flags] MESSAGE.eml")
		fmt.Fprintln(stderr, "Exit code: 0 accept, 2 quarantine, 3 tempfail, 4 discard, 5 reject, 1 error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 1
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	m, err := readMessageFile(fs.Arg(0), cfg)
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden check:", err)
		return 1
	}
	m.QueueID = *queueID
	m.Client = message.Client{Name: *clientName, HELO: *helo}
	if *clientIP != "" {
		a, err := netip.ParseAddr(*clientIP)
		if err != nil {
			fmt.Fprintf(stderr, "mailwarden check: --client-ip %q is not an IP address\n", *clientIP)
			return 1
		}
		m.Client.Addr = a.Unmap()
	}
	m.Auth = *auth
	switch {
	case *from == "<>":
		m.MailFrom = ""
	case *from != "":
		m.MailFrom = strings.Trim(*from, "<>")
	default:
		m.MailFrom = corpus.FirstAddress(m.Header.Values("From"))
	}
	m.Rcpts = rcpts
	if len(m.Rcpts) == 0 {
		m.Rcpts = corpus.Addresses(append(m.Header.Values("To"), m.Header.Values("Cc")...))
	}

	logOut := io.Discard
	if *debug {
		logOut = stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, svc, err := wire.Pipeline(cfg, logger, nil)
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden check:", err)
		return 1
	}
	defer svc.Close()
	defer p.Close()
	v := p.Run(context.Background(), m)
	if *asJSON {
		writeJSON(stdout, m, v, *explain)
	} else {
		writeText(stdout, m, v, cfg, *explain)
	}
	return exitCode(v.Action)
}

func readMessageFile(path string, cfg *policy.Config) (*message.Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read every field (the header is still bounded by
	// message.MaxHeaderBytes): more than max_headers is judged like the
	// daemon judges it, as oversize, not as an error.
	h, body, err := message.ReadMessage(f, 0)
	if err != nil {
		return nil, err
	}
	m := &message.Message{Header: h, Body: message.BytesBody(body), Received: time.Now()}
	m.Size = m.RawSize()
	m.Oversize = m.Size > int64(cfg.MaxMessageSize) || len(h) > cfg.Message.MaxHeaders
	return m, nil
}

type jsonVerdict struct {
	Action           string                `json:"action"`
	WouldBe          string                `json:"would_be"`
	Mode             string                `json:"mode"`
	Score            float64               `json:"score"`
	Reasons          []string              `json:"reasons"`
	Reply            string                `json:"reply,omitempty"`
	QuarantineReason string                `json:"quarantine_reason,omitempty"`
	Headers          []jsonHeader          `json:"headers"`
	RemoveHeaders    []jsonHeaderRef       `json:"remove_headers"`
	ChangeFrom       string                `json:"change_from,omitempty"`
	AddRcpts         []string              `json:"add_rcpts,omitempty"`
	DeleteRcpts      []string              `json:"delete_rcpts,omitempty"`
	Checks           map[string]string     `json:"checks"`
	Details          map[string]jsonDetail `json:"details"`
	Envelope         map[string]any        `json:"envelope"`
	DurationMS       float64               `json:"duration_ms"`
}

type jsonHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type jsonHeaderRef struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
}

type jsonDetail struct {
	Status     string          `json:"status"`
	Score      float64         `json:"score"`
	Action     string          `json:"action"`
	Reasons    []string        `json:"reasons,omitempty"`
	Detail     string          `json:"detail,omitempty"`
	Signals    []policy.Signal `json:"signals,omitempty"`
	Error      string          `json:"error,omitempty"`
	DurationMS float64         `json:"duration_ms"`
}

func writeJSON(w io.Writer, m *message.Message, v *policy.Verdict, explain bool) {
	out := jsonVerdict{
		Action: v.Action.String(), WouldBe: v.WouldBe.String(), Mode: string(v.Mode), Score: v.Score,
		Reasons: v.Reasons, QuarantineReason: v.QuarantineReason, ChangeFrom: v.ChangeFrom,
		AddRcpts: v.AddRcpts, DeleteRcpts: v.DeleteRcpts,
		Headers: []jsonHeader{}, RemoveHeaders: []jsonHeaderRef{},
		Checks: map[string]string{}, Details: map[string]jsonDetail{},
		Envelope:   map[string]any{"from": m.MailFrom, "rcpts": m.Rcpts, "client_ip": addrString(m.Client.Addr), "helo": m.Client.HELO, "auth": m.Auth},
		DurationMS: float64(v.Duration.Microseconds()) / 1000,
	}
	if out.Reasons == nil {
		out.Reasons = []string{}
	}
	if !v.Reply.IsZero() && (v.WouldBe == policy.ActionReject || v.WouldBe == policy.ActionTempfail) {
		out.Reply = v.Reply.String()
	}
	for _, f := range v.Prepend {
		out.Headers = append(out.Headers, jsonHeader{f.Name, message.Unfold(f.Value)})
	}
	for _, r := range v.Delete {
		out.RemoveHeaders = append(out.RemoveHeaders, jsonHeaderRef{r.Name, r.Index})
	}
	for _, c := range v.Checks {
		out.Checks[c.Name] = string(c.Status)
		d := jsonDetail{Status: string(c.Status), Score: c.Score, Action: c.Action.String(), Reasons: c.Reasons, Detail: c.Detail, Error: c.Error, DurationMS: float64(c.Duration.Microseconds()) / 1000}
		if explain {
			d.Signals = c.Signals
		}
		out.Details[c.Name] = d
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

func addrString(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}

func writeText(w io.Writer, m *message.Message, v *policy.Verdict, cfg *policy.Config, explain bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	action := v.Action.String()
	if v.WouldBe != v.Action {
		action += " (mode " + string(v.Mode) + "; enforce would " + v.WouldBe.String() + ")"
	}
	fmt.Fprintf(tw, "action:\t%s\n", action)
	fmt.Fprintf(tw, "score:\t%.2f\t(add_header %.1f, quarantine %.1f, reject %.1f)\n", v.Score, cfg.Score.AddHeader, cfg.Score.Quarantine, cfg.Score.Reject)
	fmt.Fprintf(tw, "reasons:\t%s\n", orNone(strings.Join(v.Reasons, ", ")))
	if v.WouldBe == policy.ActionReject || v.WouldBe == policy.ActionTempfail {
		fmt.Fprintf(tw, "reply:\t%s\n", v.Reply)
	}
	if v.WouldBe == policy.ActionQuarantine {
		fmt.Fprintf(tw, "quarantine:\t%s\n", v.QuarantineReason)
	}
	fmt.Fprintf(tw, "envelope:\tfrom=<%s> rcpts=%v client=%s helo=%q direction=%s\n", m.MailFrom, m.Rcpts, orNone(addrString(m.Client.Addr)), m.Client.HELO, cfg.DirectionOf(m))
	tw.Flush()
	fmt.Fprintln(w, "\nchecks:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHECK\tSTATUS\tSCORE\tACTION\tTIME\tREASONS / DETAIL")
	for _, c := range v.Checks {
		detail := strings.Join(c.Reasons, ",")
		if c.Detail != "" {
			detail = strings.TrimPrefix(detail+" "+c.Detail, " ")
		}
		if c.Error != "" {
			detail = "error: " + c.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%+.2f\t%s\t%s\t%s\n", c.Name, c.Status, c.Score, c.Action, c.Duration.Round(time.Microsecond), detail)
		if explain {
			sigs := append([]policy.Signal(nil), c.Signals...)
			sort.SliceStable(sigs, func(i, j int) bool { return abs(sigs[i].Score) > abs(sigs[j].Score) })
			for _, s := range sigs {
				fmt.Fprintf(tw, "  \t  %s\t%+.2f\t\t\t\n", s.Name, s.Score)
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\nheaders added (at the top):")
	for _, f := range v.Prepend {
		fmt.Fprintf(w, "  %s: %s\n", f.Name, strings.ReplaceAll(strings.TrimLeft(f.Value, " "), "\n", "\n  "))
	}
	if len(v.Delete) > 0 {
		fmt.Fprintln(w, "\nheaders removed:")
		for _, r := range v.Delete {
			fmt.Fprintf(w, "  %s #%d\n", r.Name, r.Index)
		}
	}
	if v.ChangeFrom != "" {
		fmt.Fprintf(w, "\nenvelope sender changed to <%s>\n", v.ChangeFrom)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// exitCode is the exit status of `mailwarden check` for an action.
func exitCode(a policy.Action) int {
	switch a {
	case policy.ActionAccept:
		return 0
	case policy.ActionQuarantine:
		return 2
	case policy.ActionTempfail:
		return 3
	case policy.ActionDiscard:
		return 4
	case policy.ActionReject:
		return 5
	}
	return 1
}
