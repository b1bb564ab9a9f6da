// Package explain is what `mailwarden check` shows of a verdict, whether
// this process ran the pipeline or the running daemon did (over its
// control socket): the message built from a file and the check's flags,
// and the verdict as text or JSON (snake_case keys), with where it was
// computed and on which config.
package explain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/corpus"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Envelope is what `check` is told of the SMTP transaction (its flags).
type Envelope struct {
	QueueID    string   `json:"queue_id,omitempty"`
	ClientIP   string   `json:"client_ip,omitempty"`
	ClientName string   `json:"client_name,omitempty"`
	HELO       string   `json:"helo,omitempty"`
	From       string   `json:"from,omitempty"` // "<>" is the null sender; "" is the From: address
	Auth       string   `json:"auth,omitempty"`
	Rcpts      []string `json:"rcpts,omitempty"` // none: the To: and Cc: addresses
}

// Message builds the message of raw as the filter would, with env's
// envelope. More than max_headers fields or max_message_size bytes is
// judged like the daemon judges it, as oversize, not as an error.
func Message(raw []byte, cfg *policy.Config, env Envelope, now time.Time) (*message.Message, error) {
	h, body, err := message.ReadMessage(bytes.NewReader(raw), 0)
	if err != nil {
		return nil, err
	}
	m := &message.Message{Header: h, Body: message.BytesBody(body), Received: now}
	m.Size = m.RawSize()
	m.Oversize = m.Size > int64(cfg.MaxMessageSize) || len(h) > cfg.Message.MaxHeaders
	m.QueueID = env.QueueID
	if m.QueueID == "" {
		m.QueueID = "CHECK"
	}
	m.Client = message.Client{Name: env.ClientName, HELO: env.HELO}
	if m.Client.Name == "" {
		m.Client.Name = "unknown"
	}
	if env.ClientIP != "" {
		a, err := netip.ParseAddr(env.ClientIP)
		if err != nil {
			return nil, fmt.Errorf("client address %q is not an IP address", env.ClientIP)
		}
		m.Client.Addr = a.Unmap()
	}
	m.Auth = env.Auth
	switch {
	case env.From == "<>":
		m.MailFrom = ""
	case env.From != "":
		m.MailFrom = strings.Trim(env.From, "<>")
	default:
		m.MailFrom = corpus.FirstAddress(m.Header.Values("From"))
	}
	m.Rcpts = env.Rcpts
	if len(m.Rcpts) == 0 {
		m.Rcpts = corpus.Addresses(append(m.Header.Values("To"), m.Header.Values("Cc")...))
	}
	return m, nil
}

// Source says who computed a verdict, on which config.
type Source struct {
	Daemon bool   // the running daemon, over its control socket
	PID    int    // the daemon's pid
	Config string // the config file in force, "" for the built-in default
	// Note explains an offline answer (e.g. why the daemon was not asked).
	Note string
	// Setup is the pipeline's description of its checks' set-up
	// (policy.Pipeline.Describe), e.g. whether the SpamAssassin rules run.
	Setup []string
}

func (s Source) config() string {
	if s.Config == "" {
		return "(built-in default)"
	}
	return s.Config
}

func (s Source) String() string {
	if s.Daemon {
		return fmt.Sprintf("the running daemon (pid %d), on its state, as a dry run: nothing written", s.PID)
	}
	out := "this process, on the state store it opened itself"
	if s.Note != "" {
		out += " (" + s.Note + ")"
	}
	return out
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
	Via              string                `json:"via"` // "daemon" or "offline"
	Config           string                `json:"config"`
	Setup            []string              `json:"setup,omitempty"`
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

func JSON(w io.Writer, m *message.Message, v *policy.Verdict, src Source, explain bool) {
	out := jsonVerdict{
		Action: v.Action.String(), WouldBe: v.WouldBe.String(), Mode: string(v.Mode), Score: v.Score,
		Reasons: v.Reasons, QuarantineReason: v.QuarantineReason, ChangeFrom: v.ChangeFrom,
		AddRcpts: v.AddRcpts, DeleteRcpts: v.DeleteRcpts,
		Headers: []jsonHeader{}, RemoveHeaders: []jsonHeaderRef{},
		Checks: map[string]string{}, Details: map[string]jsonDetail{},
		Envelope:   map[string]any{"from": m.MailFrom, "rcpts": m.Rcpts, "client_ip": addrString(m.Client.Addr), "helo": m.Client.HELO, "auth": m.Auth},
		DurationMS: float64(v.Duration.Microseconds()) / 1000,
		Via:        "offline", Config: src.config(), Setup: src.Setup,
	}
	if src.Daemon {
		out.Via = "daemon"
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

func Text(w io.Writer, m *message.Message, v *policy.Verdict, cfg *policy.Config, src Source, explain bool) {
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
	fmt.Fprintf(tw, "config:\t%s\n", src.config())
	fmt.Fprintf(tw, "answered by:\t%s\n", src)
	for _, l := range src.Setup {
		fmt.Fprintf(tw, "setup:\t%s\n", l)
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
// ExitCode is `check`'s exit code for an action: 0 accept, 2 quarantine,
// 3 tempfail, 4 discard, 5 reject, 1 anything else.
func ExitCode(a policy.Action) int {
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
