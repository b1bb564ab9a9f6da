package rua

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Store is the part of the shared state store this package uses. Its
// contract is policy/store.Store's (bolt and Redis implement it): a
// missing key is not an error, a TTL of zero never expires, Incr creates a
// counter with the ttl and keeps the expiry of an existing one, SetNX is
// atomic. No listing is needed: every set of keys is enumerated through a
// counter and numbered slots ("…:n", "…:s:<i>").
type Store interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, keys ...string) error
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	MGet(ctx context.Context, keys []string) ([][]byte, error)
}

// Key layout, all under "rua:" (day is YYYYMMDD in UTC):
//
//	rua:d:<day>:n, rua:d:<day>:s:<i>, rua:d:<day>:m:<dom>   policy domains of a day
//	rua:r:<day>:<dom>:n, …:s:<i>                              row slots (row hashes)
//	rua:r:<day>:<dom>:i:<hash>, …:c:<hash>                    row identity (JSON), count
//	rua:r:<day>:<dom>:over                                    messages beyond the row cap
//	rua:p:<day>:<dom>                                         policy used (JSON)
func domainsKey(d string) string             { return "rua:d:" + d }
func rowsKey(d, dom string) string           { return "rua:r:" + d + ":" + dom }
func policyKey(d, dom string) string         { return "rua:p:" + d + ":" + dom }
func slotKey(prefix string, i int64) string  { return prefix + ":s:" + strconv.FormatInt(i, 10) }
func identKey(prefix, hash string) string    { return prefix + ":i:" + hash }
func countKey(prefix, hash string) string    { return prefix + ":c:" + hash }
func domainMarker(prefix, dom string) string { return prefix + ":m:" + dom }

// Defaults of the collector.
const (
	DefaultMaxRows    = 10000
	DefaultMaxDomains = 100000
	// DefaultRetention keeps a day's rows long enough for three days of
	// retries after the day ends, plus margin.
	DefaultRetention = 8 * 24 * time.Hour
)

// Skip says why a message was not counted ("" when it was).
type Skip string

const (
	SkipNone           Skip = ""
	SkipNoRUA          Skip = "no-rua"          // the record names no rua=
	SkipReportAddress  Skip = "report-address"  // sent to one of our report addresses
	SkipIncomingReport Skip = "incoming-report" // it is a report itself
	SkipExcluded       Skip = "excluded"        // a configured exclusion
	SkipInvalid        Skip = "invalid"         // no source IP or no domain
)

// LoopGuard decides which messages are never counted.
type LoopGuard struct {
	// ReportAddresses are the mailboxes where we receive reports (our own
	// rua=): mail to them is never counted, whatever it looks like.
	ReportAddresses []string
	// ExcludeDomains are policy or header_from domains never reported on
	// (exact, or any subdomain when written ".example.com").
	ExcludeDomains []string
	// ExcludeRecipients are recipient addresses or "@domain"s whose mail
	// is not counted.
	ExcludeRecipients []string
	// ExcludeSources are client networks whose mail is not counted.
	ExcludeSources []netip.Prefix
}

// Check returns why o must not be counted, or SkipNone.
func (g *LoopGuard) Check(o *Observation) Skip {
	for _, r := range o.Recipients {
		r = normAddr(r)
		for _, a := range g.ReportAddresses {
			if r == normAddr(a) {
				return SkipReportAddress
			}
		}
	}
	if IsReport(o.Subject, o.MediaTypes, o.FileNames) {
		return SkipIncomingReport
	}
	for _, d := range g.ExcludeDomains {
		if domainMatch(o.Policy.Domain, d) || domainMatch(o.Row.HeaderFrom, d) {
			return SkipExcluded
		}
	}
	for _, r := range o.Recipients {
		r = normAddr(r)
		for _, x := range g.ExcludeRecipients {
			x = normAddr(x)
			if r == x || (strings.HasPrefix(x, "@") && strings.HasSuffix(r, x)) {
				return SkipExcluded
			}
		}
	}
	for _, p := range g.ExcludeSources {
		if p.Contains(o.Row.SourceIP.Unmap()) {
			return SkipExcluded
		}
	}
	return SkipNone
}

// IsReport recognises an incoming DMARC report: the RFC 7489 §7.2.1.1
// subject, an attachment named like a report ("a!b!begin!end[!id].xml.gz",
// ".zip", ".xml"), or an RFC 6591 failure report (message/feedback-report).
// Such a message never produces a report row, so that two reporters
// cannot feed each other. Other mail with zip or gzip attachments is
// counted as usual; mail to our own report addresses is never counted
// (LoopGuard.ReportAddresses), whatever it carries.
func IsReport(subject string, mediaTypes, fileNames []string) bool {
	s := strings.ToLower(strings.TrimSpace(subject))
	if strings.HasPrefix(s, "report domain:") {
		return true
	}
	for _, t := range mediaTypes {
		if strings.EqualFold(t, "message/feedback-report") {
			return true
		}
	}
	for _, n := range fileNames {
		n = strings.ToLower(n)
		if strings.Count(n, "!") >= 3 && (strings.HasSuffix(n, ".xml.gz") || strings.HasSuffix(n, ".zip") ||
			strings.HasSuffix(n, ".xml") || strings.HasSuffix(n, ".gz")) {
			return true
		}
	}
	return false
}

func normAddr(a string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(a), "<>"))
}

func domainOf(addr string) string {
	a := normAddr(addr)
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[i+1:]
	}
	return a
}

func domainMatch(d, pattern string) bool {
	d, pattern = strings.ToLower(strings.TrimSuffix(d, ".")), strings.ToLower(strings.TrimSuffix(pattern, "."))
	if d == "" || pattern == "" {
		return false
	}
	if strings.HasPrefix(pattern, ".") {
		return strings.HasSuffix(d, pattern) || d == pattern[1:]
	}
	return d == pattern
}

// Collector counts report rows in the store. Record is safe for
// concurrent use; several daemons may share one Redis store.
type Collector struct {
	Store Store
	Guard LoopGuard
	// MaxRows caps the rows per policy domain and day (DefaultMaxRows
	// when 0); MaxDomains the policy domains per day.
	MaxRows    int
	MaxDomains int
	Retention  time.Duration // DefaultRetention when 0

	stats CollectorStats
}

// CollectorStats are the collector's counters, for metrics.
type CollectorStats struct {
	Recorded, Skipped, Capped, Errors atomic.Int64
}

// Stats returns the live counters.
func (c *Collector) Stats() *CollectorStats { return &c.stats }

func (c *Collector) maxRows() int64 {
	if c.MaxRows > 0 {
		return int64(c.MaxRows)
	}
	return DefaultMaxRows
}

func (c *Collector) maxDomains() int64 {
	if c.MaxDomains > 0 {
		return int64(c.MaxDomains)
	}
	return DefaultMaxDomains
}

func (c *Collector) ttl() time.Duration {
	if c.Retention > 0 {
		return c.Retention
	}
	return DefaultRetention
}

// ErrCapped says a message was counted only in the over-cap counter.
var ErrCapped = errors.New("rua: row cap reached")

// Record counts one message. It returns why the message was skipped
// (SkipNone when counted) and an error when the store failed or the row
// cap was reached (ErrCapped: the message is then counted as not
// itemised). Callers log and count errors; they never affect mail flow.
func (c *Collector) Record(ctx context.Context, o Observation) (Skip, error) {
	s := c.prepare(&o)
	if s != SkipNone {
		c.stats.Skipped.Add(1)
		return s, nil
	}
	return SkipNone, c.count(ctx, &o, 1)
}

// RecordBatch counts several messages, with one store update per
// distinct row: under load most messages repeat a row (bulk senders), so
// a batch costs far fewer writes than its messages. Skipped messages are
// counted in Stats.
func (c *Collector) RecordBatch(ctx context.Context, os []Observation) error {
	type group struct {
		o *Observation
		n int64
	}
	var order []string
	groups := map[string]*group{}
	for i := range os {
		o := &os[i]
		if c.prepare(o) != SkipNone {
			c.stats.Skipped.Add(1)
			continue
		}
		k := day(o.Time) + "\x00" + o.Policy.Domain + "\x00" + RowKey(o.Row)
		if g := groups[k]; g != nil {
			g.o, g.n = o, g.n+1 // the last record used wins, as in Record
			continue
		}
		groups[k] = &group{o, 1}
		order = append(order, k)
	}
	var errs []error
	for _, k := range order {
		g := groups[k]
		if err := c.count(ctx, g.o, g.n); err != nil && !errors.Is(err, ErrCapped) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// prepare checks and normalises o.
func (c *Collector) prepare(o *Observation) Skip {
	if len(o.Policy.RUA) == 0 {
		return SkipNoRUA
	}
	if s := c.Guard.Check(o); s != SkipNone {
		return s
	}
	dom := strings.ToLower(strings.TrimSuffix(o.Policy.Domain, "."))
	if dom == "" || !o.Row.SourceIP.IsValid() || strings.ContainsAny(dom, ": \t") || o.Time.IsZero() {
		return SkipInvalid
	}
	o.Policy.Domain = dom
	o.Row = canonical(o.Row)
	return SkipNone
}

func (c *Collector) count(ctx context.Context, o *Observation, n int64) error {
	err := c.record(ctx, day(o.Time), o.Policy.Domain, o, n)
	switch {
	case errors.Is(err, ErrCapped):
		c.stats.Capped.Add(n)
	case err != nil:
		c.stats.Errors.Add(n)
	default:
		c.stats.Recorded.Add(n)
	}
	return err
}

func (c *Collector) record(ctx context.Context, d, dom string, o *Observation, n int64) error {
	ttl := c.ttl()
	ident, err := json.Marshal(o.Row)
	if err != nil {
		return fmt.Errorf("rua: %w", err)
	}
	pol, err := json.Marshal(o.Policy)
	if err != nil {
		return fmt.Errorf("rua: %w", err)
	}
	h := rowHash(ident)
	rk, dk := rowsKey(d, dom), domainsKey(d)
	got, err := c.Store.MGet(ctx, []string{identKey(rk, h), domainMarker(dk, dom), policyKey(d, dom)})
	if err != nil {
		return fmt.Errorf("rua: record: %w", err)
	}
	if got[1] == nil {
		// A new policy domain for this day: take a slot, then mark it.
		// Racing collectors may both take one; readers drop duplicates.
		slot, err := c.Store.Incr(ctx, dk+":n", 1, ttl)
		if err != nil {
			return fmt.Errorf("rua: record: %w", err)
		}
		if slot > c.maxDomains() {
			return fmt.Errorf("%w: more than %d policy domains on %s", ErrCapped, c.maxDomains(), d)
		}
		if err := c.Store.Set(ctx, slotKey(dk, slot), []byte(dom), ttl); err != nil {
			return fmt.Errorf("rua: record: %w", err)
		}
		if err := c.Store.Set(ctx, domainMarker(dk, dom), []byte{'1'}, ttl); err != nil {
			return fmt.Errorf("rua: record: %w", err)
		}
	}
	// The record actually used; the last one of the day is reported. It
	// is written only when it changed: the common case (a known row, the
	// same record) costs one read and one counter update.
	if !bytes.Equal(got[2], pol) {
		if err := c.Store.Set(ctx, policyKey(d, dom), pol, ttl); err != nil {
			return fmt.Errorf("rua: record: %w", err)
		}
	}
	if got[0] == nil {
		// A new row: slot first, identity second, count last, so that a
		// crash in between leaves an uncounted slot (skipped when read),
		// never a count nobody can find.
		slot, err := c.Store.Incr(ctx, rk+":n", 1, ttl)
		if err != nil {
			return fmt.Errorf("rua: record: %w", err)
		}
		if slot > c.maxRows() {
			if _, err := c.Store.Incr(ctx, rk+":over", n, ttl); err != nil {
				return fmt.Errorf("rua: record: %w", err)
			}
			return fmt.Errorf("%w: %d rows for %s on %s", ErrCapped, c.maxRows(), dom, d)
		}
		if err := c.Store.Set(ctx, slotKey(rk, slot), []byte(h), ttl); err != nil {
			return fmt.Errorf("rua: record: %w", err)
		}
		if _, err := c.Store.SetNX(ctx, identKey(rk, h), ident, ttl); err != nil {
			return fmt.Errorf("rua: record: %w", err)
		}
	}
	if _, err := c.Store.Incr(ctx, countKey(rk, h), n, ttl); err != nil {
		return fmt.Errorf("rua: record: %w", err)
	}
	return nil
}

// canonical normalises a row so that equal messages give equal keys:
// lower-case domains, sorted tuples, the IPv4 form of mapped addresses.
func canonical(r Row) Row {
	r.SourceIP = r.SourceIP.Unmap()
	r.HeaderFrom = strings.ToLower(strings.TrimSuffix(r.HeaderFrom, "."))
	r.EnvelopeFrom = strings.ToLower(strings.TrimSuffix(r.EnvelopeFrom, "."))
	if r.Disposition == "" {
		r.Disposition = DispositionNone
	}
	if r.DKIM != ResultPass {
		r.DKIM = ResultFail
	}
	if r.SPF != ResultPass {
		r.SPF = ResultFail
	}
	r.Reasons = slices.Clone(r.Reasons)
	sort.Slice(r.Reasons, func(i, j int) bool {
		a, b := r.Reasons[i], r.Reasons[j]
		return a.Type < b.Type || (a.Type == b.Type && a.Comment < b.Comment)
	})
	r.Reasons = slices.Compact(r.Reasons)
	r.DKIMAuth = slices.Clone(r.DKIMAuth)
	for i := range r.DKIMAuth {
		r.DKIMAuth[i].Domain = strings.ToLower(r.DKIMAuth[i].Domain)
		r.DKIMAuth[i].Selector = strings.ToLower(r.DKIMAuth[i].Selector)
	}
	sort.Slice(r.DKIMAuth, func(i, j int) bool {
		a, b := r.DKIMAuth[i], r.DKIMAuth[j]
		return a.Domain < b.Domain || (a.Domain == b.Domain && (a.Selector < b.Selector || (a.Selector == b.Selector && a.Result < b.Result)))
	})
	r.SPFAuth = slices.Clone(r.SPFAuth)
	for i := range r.SPFAuth {
		r.SPFAuth[i].Domain = strings.ToLower(r.SPFAuth[i].Domain)
	}
	sort.Slice(r.SPFAuth, func(i, j int) bool {
		a, b := r.SPFAuth[i], r.SPFAuth[j]
		return a.Scope < b.Scope || (a.Scope == b.Scope && (a.Domain < b.Domain || (a.Domain == b.Domain && a.Result < b.Result)))
	})
	return r
}

// RowKey is the stable identity of a row: equal after canonicalisation,
// equal key.
func RowKey(r Row) string {
	b, _ := json.Marshal(canonical(r))
	return rowHash(b)
}

func rowHash(ident []byte) string {
	s := sha256.Sum256(ident)
	return hex.EncodeToString(s[:16])
}

// Counted is a row and its message count.
type Counted struct {
	Row   Row
	Count int64
}

// Data is what was collected for one policy domain on one day.
type Data struct {
	Domain string
	Day    time.Time // 00:00 UTC
	Policy Policy
	Rows   []Counted // most messages first, then by key: deterministic
	// NotItemised counts messages beyond the row cap; MaxRows is the cap.
	NotItemised int64
	MaxRows     int64
}

// Messages is the number of messages counted, itemised or not.
func (d *Data) Messages() int64 {
	n := d.NotItemised
	for _, r := range d.Rows {
		n += r.Count
	}
	return n
}

// Merge adds other's rows into d: equal rows add their counts. The
// result keeps the deterministic order.
func (d *Data) Merge(other *Data) {
	idx := map[string]int{}
	for i, r := range d.Rows {
		idx[RowKey(r.Row)] = i
	}
	for _, r := range other.Rows {
		k := RowKey(r.Row)
		if i, ok := idx[k]; ok {
			d.Rows[i].Count += r.Count
			continue
		}
		idx[k] = len(d.Rows)
		d.Rows = append(d.Rows, Counted{canonical(r.Row), r.Count})
	}
	d.NotItemised += other.NotItemised
	sortRows(d.Rows)
}

func sortRows(rows []Counted) {
	keys := make(map[*Counted]string, len(rows))
	for i := range rows {
		keys[&rows[i]] = RowKey(rows[i].Row)
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		ra, rb := &rows[idx[a]], &rows[idx[b]]
		if ra.Count != rb.Count {
			return ra.Count > rb.Count
		}
		return keys[ra] < keys[rb]
	})
	sorted := make([]Counted, len(rows))
	for i, j := range idx {
		sorted[i] = rows[j]
	}
	copy(rows, sorted)
}

// Domains returns the policy domains with rows on the UTC day of t.
func (c *Collector) Domains(ctx context.Context, t time.Time) ([]string, error) {
	vals, err := slots(ctx, c.Store, domainsKey(day(t)), c.maxDomains())
	if err != nil {
		return nil, err
	}
	sort.Strings(vals)
	return vals, nil
}

// slots reads the distinct values of the numbered slots under prefix.
func slots(ctx context.Context, s Store, prefix string, max int64) ([]string, error) {
	nb, _, err := s.Get(ctx, prefix+":n")
	if err != nil {
		return nil, fmt.Errorf("rua: %w", err)
	}
	n, _ := strconv.ParseInt(string(nb), 10, 64)
	n = min(n, max)
	seen := map[string]bool{}
	var out []string
	const batch = 1000
	for lo := int64(1); lo <= n; lo += batch {
		var keys []string
		for i := lo; i <= n && i < lo+batch; i++ {
			keys = append(keys, slotKey(prefix, i))
		}
		vals, err := s.MGet(ctx, keys)
		if err != nil {
			return nil, fmt.Errorf("rua: %w", err)
		}
		for _, v := range vals {
			if v != nil && !seen[string(v)] {
				seen[string(v)] = true
				out = append(out, string(v))
			}
		}
	}
	return out, nil
}

// Load reads what was collected for dom on the UTC day of t; nil when
// nothing was.
func (c *Collector) Load(ctx context.Context, t time.Time, dom string) (*Data, error) {
	d := day(t)
	rk := rowsKey(d, dom)
	hashes, err := slots(ctx, c.Store, rk, c.maxRows())
	if err != nil {
		return nil, err
	}
	pb, ok, err := c.Store.Get(ctx, policyKey(d, dom))
	if err != nil {
		return nil, fmt.Errorf("rua: %w", err)
	}
	if !ok {
		return nil, nil
	}
	out := &Data{Domain: dom, Day: DayStart(t), MaxRows: c.maxRows()}
	if err := json.Unmarshal(pb, &out.Policy); err != nil {
		return nil, fmt.Errorf("rua: policy of %s: %w", dom, err)
	}
	ob, _, err := c.Store.Get(ctx, rk+":over")
	if err != nil {
		return nil, fmt.Errorf("rua: %w", err)
	}
	out.NotItemised, _ = strconv.ParseInt(string(ob), 10, 64)
	const batch = 500
	for lo := 0; lo < len(hashes); lo += batch {
		hs := hashes[lo:min(lo+batch, len(hashes))]
		keys := make([]string, 0, 2*len(hs))
		for _, h := range hs {
			keys = append(keys, identKey(rk, h), countKey(rk, h))
		}
		vals, err := c.Store.MGet(ctx, keys)
		if err != nil {
			return nil, fmt.Errorf("rua: %w", err)
		}
		for i := range hs {
			ib, cb := vals[2*i], vals[2*i+1]
			n, _ := strconv.ParseInt(string(cb), 10, 64)
			if ib == nil || n <= 0 {
				continue // a slot whose message never got counted
			}
			var r Row
			if err := json.Unmarshal(ib, &r); err != nil {
				continue
			}
			out.Rows = append(out.Rows, Counted{r, n})
		}
	}
	sortRows(out.Rows)
	return out, nil
}
