// Package quarcli is `mailwarden quarantine list|show|release|delete|purge`,
// the recipients' sender lists (`senders|allow|deny|unlist`) and the
// quarantine lines of `mailwarden status`. The daemon holds the
// index (bbolt locks its file), so the command sends a Request over the
// control socket and the daemon answers with Handle; without a running
// daemon the command opens the index itself and calls Handle directly.
package quarcli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailwarden/mailwarden/policy/quarantine"
)

// Request is one command.
type Request struct {
	Cmd      string `json:"cmd"` // list, show, release, delete, purge, stats, senders, allow, deny, unlist
	ID       string `json:"id,omitempty"`
	Rcpt     string `json:"rcpt,omitempty"`
	Category string `json:"category,omitempty"`
	State    string `json:"state,omitempty"`
	Query    string `json:"query,omitempty"`
	Limit    int    `json:"limit,omitempty"`
	Raw      bool   `json:"raw,omitempty"` // show: the message as received
	JSON     bool   `json:"-"`             // print JSON
	By       string `json:"by,omitempty"`  // who runs the command (for the audit)
	Sender   string `json:"sender,omitempty"`
}

// Response is the daemon's answer.
type Response struct {
	Items  []*quarantine.Item       `json:"items,omitempty"`
	Item   *quarantine.Item         `json:"item,omitempty"`
	Raw    []byte                   `json:"raw,omitempty"`
	Expire *quarantine.ExpireReport `json:"expire,omitempty"`
	Stats  *quarantine.Stats        `json:"stats,omitempty"`
	// Senders is a recipient's sender list (senders, allow, deny, unlist).
	Senders []quarantine.SenderEntry `json:"senders,omitempty"`
	Lists   bool                     `json:"lists,omitempty"` // Senders is the answer (even when empty)
}

// Usage is the command's help text.
const Usage = `usage: mailwarden quarantine <command> [flags]
  list    [-category C] [-state held|released|deleted|expired|all] [-q TEXT] [-limit N] [-json]
  show    [-raw] [-json] ID
  release [-rcpt ADDR] ID     re-inject for ADDR, or for every held recipient
  delete  [-rcpt ADDR] ID
  purge                       run the expiry job now (retention and size cap)
  senders -rcpt ADDR          the sender list of ADDR (the page's "My lists")
  allow   -rcpt ADDR SENDER   put SENDER on ADDR's allow list (its spam is delivered)
  deny    -rcpt ADDR SENDER   put SENDER on ADDR's deny list (its mail is quarantined)
  unlist  -rcpt ADDR SENDER   remove SENDER from ADDR's list
`

// Parse reads the command line after "quarantine".
func Parse(args []string) (Request, error) {
	if len(args) == 0 {
		return Request{}, errors.New(Usage)
	}
	r := Request{Cmd: args[0]}
	fs := flag.NewFlagSet("quarantine "+r.Cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&r.JSON, "json", false, "print JSON")
	switch r.Cmd {
	case "list":
		fs.StringVar(&r.Category, "category", "", "")
		fs.StringVar(&r.State, "state", "held", "")
		fs.StringVar(&r.Query, "q", "", "")
		fs.IntVar(&r.Limit, "limit", 100, "")
	case "show":
		fs.BoolVar(&r.Raw, "raw", false, "")
	case "release", "delete":
		fs.StringVar(&r.Rcpt, "rcpt", "", "")
	case "senders", "allow", "deny", "unlist":
		fs.StringVar(&r.Rcpt, "rcpt", "", "")
	case "purge", "stats":
	default:
		return r, fmt.Errorf("quarantine: unknown command %q\n%s", r.Cmd, Usage)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return r, fmt.Errorf("quarantine %s: %w\n%s", r.Cmd, err, Usage)
	}
	switch r.Cmd {
	case "senders", "allow", "deny", "unlist":
		if r.Rcpt == "" {
			return r, fmt.Errorf("quarantine %s: -rcpt is required\n%s", r.Cmd, Usage)
		}
		want := 1
		if r.Cmd == "senders" {
			want = 0
		}
		if fs.NArg() != want {
			return r, fmt.Errorf("quarantine %s: want %d sender argument(s)\n%s", r.Cmd, want, Usage)
		}
		r.Sender = fs.Arg(0)
	case "show", "release", "delete":
		if fs.NArg() != 1 {
			return r, fmt.Errorf("quarantine %s: want one item id\n%s", r.Cmd, Usage)
		}
		r.ID = fs.Arg(0)
	default:
		if fs.NArg() != 0 {
			return r, fmt.Errorf("quarantine %s: unexpected %q\n%s", r.Cmd, fs.Arg(0), Usage)
		}
	}
	return r, nil
}

// maxRaw bounds what show -raw returns over the control socket.
const maxRaw = 64 << 20

// Handle runs a request against the quarantine, as the operator on the
// command line (an admin; the audit log names them).
func Handle(ctx context.Context, q *quarantine.Quarantine, r Request) (*Response, error) {
	by := "cli"
	if r.By != "" {
		by = "cli:" + r.By
	}
	a := quarantine.Actor{Name: by, Role: quarantine.RoleAdmin}
	switch r.Cmd {
	case "list":
		f := quarantine.Filter{Query: r.Query, Limit: r.Limit}
		if r.Category != "" {
			c, err := quarantine.ParseCategory(r.Category)
			if err != nil {
				return nil, err
			}
			f.Category = c
		}
		if r.State != "" && r.State != "all" {
			s, err := quarantine.ParseState(r.State)
			if err != nil {
				return nil, err
			}
			f.State = s
		}
		items, err := q.List(ctx, a, f)
		return &Response{Items: items}, err
	case "show":
		if !r.Raw {
			it, err := q.Get(ctx, r.ID, a)
			return &Response{Item: it}, err
		}
		it, rc, err := q.Open(ctx, r.ID, a)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, maxRaw))
		return &Response{Item: it, Raw: b}, err
	case "release":
		it, err := q.Release(ctx, r.ID, r.Rcpt, a)
		return &Response{Item: it}, err
	case "delete":
		it, err := q.Delete(ctx, r.ID, r.Rcpt, a)
		return &Response{Item: it}, err
	case "purge":
		rep, err := q.Expire(ctx)
		return &Response{Expire: &rep}, err
	case "stats":
		st, err := q.Stats(ctx)
		return &Response{Stats: &st}, err
	case "allow", "deny", "unlist", "senders":
		var err error
		switch r.Cmd {
		case "allow":
			err = q.ListSender(ctx, a, r.Rcpt, r.Sender, quarantine.ListAllow, nil)
		case "deny":
			err = q.ListSender(ctx, a, r.Rcpt, r.Sender, quarantine.ListDeny, nil)
		case "unlist":
			err = q.UnlistSender(ctx, a, r.Rcpt, r.Sender)
		}
		if err != nil {
			return nil, err
		}
		l, err := q.SenderList(ctx, a, r.Rcpt)
		return &Response{Senders: l, Lists: true}, err
	}
	return nil, fmt.Errorf("quarantine: unknown command %q", r.Cmd)
}

// Print writes a response for a person (or as JSON with -json).
func Print(w io.Writer, r Request, resp *Response, now time.Time) error {
	if r.JSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(resp)
	}
	switch {
	case r.Cmd == "list":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tCATEGORY\tSCORE\tFROM\tSUBJECT\tRECIPIENTS")
		for _, it := range resp.Items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%s\t%s\t%s\n", it.ID, it.Time.UTC().Format("2006-01-02 15:04"),
				it.Category, it.Score, clip(it.MailFrom, 40), clip(it.Subject, 50), recipients(it))
		}
		return tw.Flush()
	case r.Cmd == "show" && r.Raw:
		_, err := w.Write(resp.Raw)
		return err
	case resp.Item != nil:
		it := resp.Item
		fmt.Fprintf(w, "id:         %s\nmode:       %s\nreceived:   %s\nqueue id:   %s\nclient:     %s (HELO %s)\n",
			it.ID, it.Mode, it.Time.UTC().Format(time.RFC3339), it.QueueID, it.Client, it.HELO)
		fmt.Fprintf(w, "mail from:  <%s>\nfrom:       %s\nsubject:    %s\ncategory:   %s\nscore:      %.1f\nreasons:    %s\n",
			it.MailFrom, it.From, it.Subject, it.Category, it.Score, strings.Join(it.Reasons, " "))
		fmt.Fprintf(w, "size:       %d (stored %d)\nsha256:     %s\n", it.Size, it.Stored, it.SHA256)
		for _, rc := range it.Recipients {
			by := ""
			if rc.By != "" {
				by = " by " + rc.By + " at " + rc.At.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "recipient:  %s %s%s\n", rc.Addr, rc.State, by)
		}
		return nil
	case resp.Lists:
		if len(resp.Senders) == 0 {
			_, err := fmt.Fprintf(w, "%s: no sender listed\n", r.Rcpt)
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SENDER\tLIST\tBY\tAT")
		for _, e := range resp.Senders {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", clip(e.Sender, 60), e.Kind, clip(e.By, 40), e.At.UTC().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case resp.Expire != nil:
		e := resp.Expire
		_, err := fmt.Fprintf(w, "expired %d by age, %d by the size cap; dropped %d old records; %s kept\n",
			e.Expired, e.Capped, e.Removed, humanBytes(e.Bytes))
		return err
	case resp.Stats != nil:
		_, err := fmt.Fprintln(w, Summary(*resp.Stats, now))
		return err
	}
	return nil
}

// Summary is the quarantine line of `mailwarden status`.
func Summary(s quarantine.Stats, now time.Time) string {
	if s.Items == 0 {
		return "empty"
	}
	var parts []string
	for _, c := range quarantine.Categories {
		if n := s.ByCategory[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	return fmt.Sprintf("%d held (%s), %s, oldest %s ago", s.Items, strings.Join(parts, ", "),
		humanBytes(s.Bytes), now.Sub(s.Oldest).Round(time.Minute))
}

func recipients(it *quarantine.Item) string {
	var out []string
	for _, r := range it.Recipients {
		out = append(out, r.Addr+"="+r.State.String())
	}
	return strings.Join(out, ",")
}

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\t' {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func humanBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
