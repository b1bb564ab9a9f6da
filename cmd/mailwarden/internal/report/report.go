// Package report evaluates mailwarden's JSON logs (the guidance: logs must
// be evaluated regularly to find attacks). It reads the one summary line
// per message ("msg":"message") and the operations events ("recipient
// refused", "relay attempt", "local-only refused", "spool space low",
// "mode changed", "neighbour down") and computes totals by action, top
// rejected clients and sender domains, authentication failures by sender
// domain (reason codes spf-fail, dkim-fail, dmarc-*; RFC 7208, RFC 6376,
// RFC 7489), virus hits, rate-limit and relay events, and bursts: one
// sender address or client that sent many messages within a short window.
//
// Log lines are hostile input (addresses and host names come from the
// sender): lines that are not JSON objects are counted and skipped, and
// the HTML page escapes every value.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Options select what is counted.
type Options struct {
	// Since drops lines older than this time (zero: keep all).
	Since time.Time
	// Top is the length of the top-N tables.
	Top int
	// Burst: BurstCount messages or more from one address or client within
	// BurstWindow is reported.
	BurstCount  int
	BurstWindow time.Duration
}

// DefaultOptions are the command's defaults.
func DefaultOptions() Options {
	return Options{Top: 10, BurstCount: 20, BurstWindow: 10 * time.Minute}
}

// Count is one row of a top-N table.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// AuthFailure counts authentication failures of one sender domain.
type AuthFailure struct {
	Domain  string         `json:"domain"`
	Total   int            `json:"total"`
	Reasons map[string]int `json:"reasons"`
}

// Event is one notable line (virus hit, relay attempt, ...).
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	QueueID string    `json:"queue_id,omitempty"`
	Client  string    `json:"client,omitempty"`
	From    string    `json:"from,omitempty"`
	Rcpt    string    `json:"rcpt,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// Burst is a run of messages from one address or client.
type Burst struct {
	Key   string    `json:"key"` // "from:addr" or "client:ip"
	Count int       `json:"count"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Report is the evaluation of a set of log files.
type Report struct {
	Since, First, Last time.Time
	Lines, Skipped     int // lines read; lines that were not JSON objects

	Messages      int
	ByAction      map[string]int // enforced action
	ByWouldBe     map[string]int // what enforce mode would have done
	RcptsRefused  int
	Reasons       []Count
	TopClients    []Count // clients of rejected messages and refused recipients
	TopDomains    []Count // sender domains of rejected messages and refused recipients
	AuthFailures  []AuthFailure
	Viruses       []Event
	RateLimits    []Count // by reason code
	RateLimitLog  []Event
	RelayAttempts []Event
	LocalOnly     []Event
	Ops           []Event // spool low, mode changes, neighbours down
	Bursts        []Burst
	Hourly        []Count // messages per hour, key "2006-01-02T15"

	opt      Options
	clients  map[string]int
	domains  map[string]int
	reasons  map[string]int
	auth     map[string]*AuthFailure
	limits   map[string]int
	hourly   map[string]int
	arrivals map[string][]time.Time
}

// New starts an empty report.
func New(opt Options) *Report {
	if opt.Top <= 0 {
		opt.Top = 10
	}
	return &Report{Since: opt.Since, opt: opt, ByAction: map[string]int{}, ByWouldBe: map[string]int{},
		clients: map[string]int{}, domains: map[string]int{}, reasons: map[string]int{}, auth: map[string]*AuthFailure{},
		limits: map[string]int{}, hourly: map[string]int{}, arrivals: map[string][]time.Time{}}
}

// line is the part of a log line we read. Unknown keys are ignored.
type line struct {
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	QueueID  string    `json:"queue_id"`
	Client   string    `json:"client"`
	From     string    `json:"from"`
	Rcpt     string    `json:"rcpt"`
	Rcpts    []string  `json:"rcpts"`
	Action   string    `json:"action"`
	WouldBe  string    `json:"would_be"`
	Reasons  []string  `json:"reasons"`
	Reason   string    `json:"reason"`
	Dir      string    `json:"dir"`
	To       string    `json:"to"`
	Kind     string    `json:"kind"`
	Target   string    `json:"target"`
	Error    string    `json:"error"`
	Class    string    `json:"class"`
	Mode     string    `json:"mode"`
	Override bool      `json:"override"`
}

// Read adds every line of r.
func (rep *Report) Read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		rep.Add(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Add adds one log line.
func (rep *Report) Add(b []byte) {
	rep.Lines++
	var l line
	if err := json.Unmarshal(b, &l); err != nil || l.Msg == "" {
		rep.Skipped++
		return
	}
	if !rep.Since.IsZero() && (l.Time.IsZero() || l.Time.Before(rep.Since)) {
		return
	}
	if !l.Time.IsZero() {
		if rep.First.IsZero() || l.Time.Before(rep.First) {
			rep.First = l.Time
		}
		if l.Time.After(rep.Last) {
			rep.Last = l.Time
		}
	}
	switch l.Msg {
	case "message":
		rep.message(&l)
	case "recipient refused":
		rep.RcptsRefused++
		if l.Action == "reject" {
			rep.rejected(&l)
		}
		for _, r := range l.Reasons {
			rep.reasons[r]++
			rep.limit(&l, r)
		}
	case "relay attempt":
		rep.RelayAttempts = append(rep.RelayAttempts, Event{Time: l.Time, Kind: "relay-attempt", Client: l.Client, From: l.From, Rcpt: l.Rcpt})
	case "local-only refused":
		rep.LocalOnly = append(rep.LocalOnly, Event{Time: l.Time, Kind: l.Reason, Client: l.Client, From: l.From, Rcpt: l.Rcpt, Detail: l.Class})
	case "spool space low":
		rep.Ops = append(rep.Ops, Event{Time: l.Time, Kind: "spool-low", Detail: l.Dir})
	case "mode changed":
		rep.Ops = append(rep.Ops, Event{Time: l.Time, Kind: "mode-change", Detail: l.To})
	case "neighbour down":
		rep.Ops = append(rep.Ops, Event{Time: l.Time, Kind: "neighbour-down", Detail: l.Kind + " " + l.Target, Reason: l.Error})
	}
}

func (rep *Report) message(l *line) {
	rep.Messages++
	if l.Action != "" {
		rep.ByAction[l.Action]++
	}
	wb := l.WouldBe
	if wb == "" {
		wb = l.Action
	}
	if wb != "" {
		rep.ByWouldBe[wb]++
	}
	if wb == "reject" {
		rep.rejected(l)
	}
	if !l.Time.IsZero() {
		rep.hourly[l.Time.UTC().Format("2006-01-02T15")]++
		if l.From != "" {
			rep.arrivals["from:"+strings.ToLower(l.From)] = append(rep.arrivals["from:"+strings.ToLower(l.From)], l.Time)
		}
		if l.Client != "" {
			rep.arrivals["client:"+l.Client] = append(rep.arrivals["client:"+l.Client], l.Time)
		}
	}
	dom := domain(l.From)
	for _, r := range l.Reasons {
		rep.reasons[r]++
		if isAuthFailure(r) {
			key := dom
			if key == "" {
				key = "<>"
			}
			a := rep.auth[key]
			if a == nil {
				a = &AuthFailure{Domain: key, Reasons: map[string]int{}}
				rep.auth[key] = a
			}
			a.Total++
			a.Reasons[r]++
		}
		if strings.HasPrefix(r, "virus-") && r != "virus-error" {
			rep.Viruses = append(rep.Viruses, Event{Time: l.Time, Kind: r, QueueID: l.QueueID, Client: l.Client, From: l.From, Rcpt: strings.Join(l.Rcpts, ","), Reason: r})
		}
		rep.limit(l, r)
	}
}

func (rep *Report) limit(l *line, r string) {
	if !isRateLimit(r) {
		return
	}
	rep.limits[r]++
	rcpt := l.Rcpt
	if rcpt == "" {
		rcpt = strings.Join(l.Rcpts, ",")
	}
	rep.RateLimitLog = append(rep.RateLimitLog, Event{Time: l.Time, Kind: "rate-limit", QueueID: l.QueueID, Client: l.Client, From: l.From, Rcpt: rcpt, Reason: r})
}

func (rep *Report) rejected(l *line) {
	if l.Client != "" {
		rep.clients[l.Client]++
	}
	d := domain(l.From)
	if d == "" {
		d = "<>"
	}
	rep.domains[d]++
}

// isAuthFailure: SPF fail, DKIM fail, any DMARC failure reason.
func isAuthFailure(r string) bool {
	switch r {
	case "spf-fail", "spf-softfail", "dkim-fail":
		return true
	}
	return strings.HasPrefix(r, "dmarc-") && r != "dmarc-pass" && r != "dmarc-error"
}

// isRateLimit: the rate limiter's limit-NAME and limit-exceeded, the
// auto-reply guard's autoreply-limited, and anything ending in -limited.
func isRateLimit(r string) bool {
	return strings.HasPrefix(r, "limit-") && r != "limit-error" || strings.HasSuffix(r, "-limited") || r == "ratelimit"
}

func domain(addr string) string {
	addr = strings.Trim(addr, "<> ")
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
	}
	return ""
}

// Finish computes the sorted tables; call it once after the last Add.
func (rep *Report) Finish() *Report {
	rep.TopClients = top(rep.clients, rep.opt.Top)
	rep.TopDomains = top(rep.domains, rep.opt.Top)
	rep.Reasons = top(rep.reasons, 0)
	rep.RateLimits = top(rep.limits, 0)
	for _, a := range rep.auth {
		rep.AuthFailures = append(rep.AuthFailures, *a)
	}
	sort.Slice(rep.AuthFailures, func(i, j int) bool {
		if rep.AuthFailures[i].Total != rep.AuthFailures[j].Total {
			return rep.AuthFailures[i].Total > rep.AuthFailures[j].Total
		}
		return rep.AuthFailures[i].Domain < rep.AuthFailures[j].Domain
	})
	if rep.opt.Top > 0 && len(rep.AuthFailures) > rep.opt.Top {
		rep.AuthFailures = rep.AuthFailures[:rep.opt.Top]
	}
	hours := make([]string, 0, len(rep.hourly))
	for h := range rep.hourly {
		hours = append(hours, h)
	}
	sort.Strings(hours)
	rep.Hourly = nil
	for _, h := range hours {
		rep.Hourly = append(rep.Hourly, Count{h, rep.hourly[h]})
	}
	rep.Bursts = nil
	if rep.opt.BurstCount > 0 && rep.opt.BurstWindow > 0 {
		for key, ts := range rep.arrivals {
			if b, ok := burst(ts, rep.opt.BurstCount, rep.opt.BurstWindow); ok {
				b.Key = key
				rep.Bursts = append(rep.Bursts, b)
			}
		}
	}
	sort.Slice(rep.Bursts, func(i, j int) bool {
		if rep.Bursts[i].Count != rep.Bursts[j].Count {
			return rep.Bursts[i].Count > rep.Bursts[j].Count
		}
		return rep.Bursts[i].Key < rep.Bursts[j].Key
	})
	for _, evs := range [][]Event{rep.Viruses, rep.RelayAttempts, rep.LocalOnly, rep.Ops, rep.RateLimitLog} {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	}
	return rep
}

// burst finds the densest window: the most arrivals within w, if at least n.
func burst(ts []time.Time, n int, w time.Duration) (Burst, bool) {
	if len(ts) < n {
		return Burst{}, false
	}
	s := append([]time.Time(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	best, bi, bj := 0, 0, 0
	i := 0
	for j := range s {
		for s[j].Sub(s[i]) > w {
			i++
		}
		if c := j - i + 1; c > best {
			best, bi, bj = c, i, j
		}
	}
	if best < n {
		return Burst{}, false
	}
	return Burst{Count: best, Start: s[bi], End: s[bj]}, true
}

func top(m map[string]int, n int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Actions lists the actions in severity order, for stable output.
var Actions = []string{"accept", "quarantine", "tempfail", "discard", "reject"}

// WriteText prints the report for a terminal.
func (rep *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	p := func(format string, a ...any) { fmt.Fprintf(ew, format, a...) }
	p("mailwarden report\n")
	if !rep.First.IsZero() {
		p("period: %s .. %s\n", rep.First.UTC().Format(time.RFC3339), rep.Last.UTC().Format(time.RFC3339))
	}
	if !rep.Since.IsZero() {
		p("since:  %s\n", rep.Since.UTC().Format(time.RFC3339))
	}
	p("lines:  %d (%d not JSON, skipped)\n\n", rep.Lines, rep.Skipped)
	p("messages: %d   recipients refused at RCPT: %d\n", rep.Messages, rep.RcptsRefused)
	for _, a := range Actions {
		p("  %-11s %7d   (enforce would: %d)\n", a, rep.ByAction[a], rep.ByWouldBe[a])
	}
	table := func(title string, rows []Count) {
		p("\n%s:\n", title)
		if len(rows) == 0 {
			p("  (none)\n")
		}
		for _, r := range rows {
			p("  %7d  %s\n", r.Count, r.Key)
		}
	}
	table("top rejected clients", rep.TopClients)
	table("top rejected sender domains", rep.TopDomains)
	p("\nauthentication failures by sender domain:\n")
	if len(rep.AuthFailures) == 0 {
		p("  (none)\n")
	}
	for _, a := range rep.AuthFailures {
		p("  %7d  %s  (%s)\n", a.Total, a.Domain, formatReasons(a.Reasons))
	}
	events := func(title string, evs []Event) {
		p("\n%s: %d\n", title, len(evs))
		for i, e := range evs {
			if i == rep.opt.Top && len(evs) > rep.opt.Top {
				p("  ... %d more\n", len(evs)-i)
				break
			}
			p("  %s  %s client=%s from=%s rcpt=%s %s\n", e.Time.UTC().Format(time.RFC3339), e.Kind, e.Client, e.From, e.Rcpt, e.Detail)
		}
	}
	events("virus hits", rep.Viruses)
	table("rate-limit events", rep.RateLimits)
	events("relay attempts", rep.RelayAttempts)
	events("local-only refusals", rep.LocalOnly)
	p("\nbursts (>= %d messages within %s from one address or client): %d\n", rep.opt.BurstCount, rep.opt.BurstWindow, len(rep.Bursts))
	for _, b := range rep.Bursts {
		p("  %7d  %s  %s .. %s\n", b.Count, b.Key, b.Start.UTC().Format(time.RFC3339), b.End.UTC().Format(time.RFC3339))
	}
	events("operations events", rep.Ops)
	table("reason codes", rep.Reasons)
	return ew.err
}

func formatReasons(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(s, ", ")
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
