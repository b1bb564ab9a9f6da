package rua

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

// State is an outbox job's state.
//
//	pending ──send committed──▶ sending ──MTA said 250──▶ sent
//	   ▲  │                        │
//	   │  └── 3 days old ──▶ given-up
//	   └── refused / failed before the final "." (retry with backoff)
//
// "sending" is written just before the final "." of the SMTP DATA (when
// the MTA still holds nothing it would deliver), "sent" just after the
// MTA's reply. A job found in "sending" after its lease expired belongs to
// a sender that died in that window: the MTA may or may not have queued
// the message, and we cannot ask it. Such a job is closed as sent with
// Unconfirmed set, logged and counted, and never resent: reporting chooses
// no duplicates in that window of a few milliseconds. Every other failure
// (connect, MAIL, RCPT, DATA, a refusal of the final ".") leaves the job
// pending and it is retried, so delivery is at-least-once outside that
// window.
type State string

const (
	StatePending State = "pending"
	StateSending State = "sending"
	StateSent    State = "sent"
	StateGivenUp State = "given-up"
)

// Job is the delivery of one report to one destination.
type Job struct {
	ReportID    string    `json:"id"`
	Domain      string    `json:"domain"`
	URI         string    `json:"uri"` // as published in rua=
	To          string    `json:"to"`  // the mailbox actually used
	State       State     `json:"state"`
	Created     time.Time `json:"created"`
	Attempts    int       `json:"attempts"`
	NextTry     time.Time `json:"next_try"`
	LeaseUntil  time.Time `json:"lease_until,omitzero"`
	SentAt      time.Time `json:"sent_at,omitzero"`
	Notice      bool      `json:"notice,omitempty"` // a too-large notice was sent instead
	Unconfirmed bool      `json:"unconfirmed,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
}

// Transport hands a message to the MTA. It calls commit after the whole
// message was transmitted and before the final "." of DATA; when commit
// fails it must abort without the "." (the MTA then discards the
// message). An error from Send is a *SendError unless commit failed.
type Transport interface {
	Send(ctx context.Context, from, to string, msg []byte, commit func() error) error
}

// SendError is a failed delivery to the MTA.
type SendError struct {
	// Committed: the final "." was sent and no reply came back: the
	// outcome is unknown.
	Committed bool
	Code      int // SMTP reply code, 0 when none
	Err       error
}

func (e *SendError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("rua: smtp: %d: %v", e.Code, e.Err)
	}
	return fmt.Sprintf("rua: smtp: %v", e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// Reporter builds and sends the reports of finished days.
type Reporter struct {
	Collector *Collector
	Verifier  *Verifier
	Transport Transport
	Identity  Identity
	// From is the From address of reports and their envelope sender
	// (Identity.Email when empty).
	From string
	// MaxDestinations caps the mailto: URIs served per domain (3 when 0).
	MaxDestinations int
	// GiveUpAfter is how long after the end of its day a report is
	// retried (72h when 0).
	GiveUpAfter time.Duration
	// Lease bounds one delivery attempt (15m when 0).
	Lease  time.Duration
	Logger *slog.Logger

	stats ReporterStats
}

// ReporterStats are the reporter's counters, for metrics.
type ReporterStats struct {
	Built, Sent, Notices, Retries, GivenUp, Unauthorized, Unconfirmed, Skipped, Errors atomic.Int64
}

// Stats returns the live counters.
func (r *Reporter) Stats() *ReporterStats { return &r.stats }

func (r *Reporter) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Reporter) from() string {
	if r.From != "" {
		return r.From
	}
	return r.Identity.Email
}

func (r *Reporter) giveUp() time.Duration {
	if r.GiveUpAfter > 0 {
		return r.GiveUpAfter
	}
	return 72 * time.Hour
}

func (r *Reporter) lease() time.Duration {
	if r.Lease > 0 {
		return r.Lease
	}
	return 15 * time.Minute
}

func (r *Reporter) maxDest() int {
	if r.MaxDestinations > 0 {
		return r.MaxDestinations
	}
	return 3
}

func jobKey(d, dom, to string) string { return "rua:j:" + d + ":" + dom + ":" + strings.ToLower(to) }
func lockKey(jk string) string        { return "rua:l:" + jk[len("rua:j:"):] }
func blobKey(d, dom string) string    { return "rua:b:" + d + ":" + dom }
func builtKey(d, dom string) string   { return "rua:g:" + d + ":" + dom }

// Run does one pass: it builds the reports of every finished UTC day
// still within GiveUpAfter and tries every due job. Errors of single jobs
// are logged and counted; the returned error joins them.
func (r *Reporter) Run(ctx context.Context, now time.Time) error {
	today := DayStart(now)
	days := int(r.giveUp()/(24*time.Hour)) + 1
	var errs []error
	for i := days; i >= 1; i-- {
		if err := r.RunDay(ctx, today.AddDate(0, 0, -i), now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrDayNotOver refuses to report on a day that has not ended.
var ErrDayNotOver = errors.New("rua: the day is not over yet")

// RunDay builds (once) and sends the reports of the UTC day of d.
func (r *Reporter) RunDay(ctx context.Context, d, now time.Time) error {
	d = DayStart(d)
	if now.Before(d.Add(24 * time.Hour)) {
		return ErrDayNotOver
	}
	doms, err := r.Collector.Domains(ctx, d)
	if err != nil {
		r.stats.Errors.Add(1)
		return err
	}
	cache := map[string]verdict{}
	var errs []error
	for _, dom := range doms {
		if err := r.runDomain(ctx, d, dom, now, cache); err != nil {
			r.stats.Errors.Add(1)
			r.log().Warn("dmarc report", "domain", dom, "day", day(d), "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Build returns the reports of the UTC day of d without touching the
// outbox (for dry runs).
func (r *Reporter) Build(ctx context.Context, d time.Time) ([]*Report, error) {
	doms, err := r.Collector.Domains(ctx, d)
	if err != nil {
		return nil, err
	}
	var out []*Report
	for _, dom := range doms {
		data, err := r.Collector.Load(ctx, d, dom)
		if err != nil {
			return nil, err
		}
		if data == nil || data.Messages() == 0 {
			continue
		}
		rep, err := Gzip(r.Identity, Build(r.Identity, data))
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}

type built struct {
	Report *Report  `json:"report"`
	URIs   []string `json:"uris"`
}

// ensureBuilt builds the report of dom once and creates its jobs; a crash
// half-way is repaired by the next pass (stable ID, SetNX jobs).
func (r *Reporter) ensureBuilt(ctx context.Context, d time.Time, dom string, now time.Time) (*built, error) {
	s := r.Collector.Store
	dk := day(d)
	if b, ok, err := s.Get(ctx, builtKey(dk, dom)); err != nil {
		return nil, fmt.Errorf("rua: %w", err)
	} else if ok {
		var bl built
		if err := json.Unmarshal(b, &bl); err != nil {
			return nil, fmt.Errorf("rua: built report %s: %w", dom, err)
		}
		return &bl, nil
	}
	data, err := r.Collector.Load(ctx, d, dom)
	if err != nil {
		return nil, err
	}
	if data == nil || data.Messages() == 0 {
		return nil, nil
	}
	rep, err := Gzip(r.Identity, Build(r.Identity, data))
	if err != nil {
		return nil, err
	}
	bl := &built{Report: rep}
	seen := map[string]bool{}
	for _, u := range data.Policy.RUA {
		dest, err := ParseURI(u)
		if err != nil {
			r.stats.Skipped.Add(1)
			r.log().Info("dmarc report: destination skipped", "domain", dom, "uri", u, "err", err)
			continue
		}
		if k := strings.ToLower(dest.Addr); !seen[k] && len(bl.URIs) < r.maxDest() {
			seen[k] = true
			bl.URIs = append(bl.URIs, u)
		} else if !seen[k] {
			r.stats.Skipped.Add(1)
			r.log().Info("dmarc report: too many destinations", "domain", dom, "uri", u, "max", r.maxDest())
		}
	}
	ttl := r.Collector.ttl()
	for _, u := range bl.URIs {
		dest, _ := ParseURI(u)
		j := Job{ReportID: rep.ID, Domain: dom, URI: u, To: dest.Addr, State: StatePending, Created: now, NextTry: now}
		jb, _ := json.Marshal(j)
		if _, err := s.SetNX(ctx, jobKey(dk, dom, dest.Addr), jb, ttl); err != nil {
			return nil, fmt.Errorf("rua: %w", err)
		}
	}
	bb, err := json.Marshal(bl)
	if err != nil {
		return nil, fmt.Errorf("rua: %w", err)
	}
	// The built report is written last and never rewritten: a later pass
	// sends exactly these bytes even if late rows arrived meanwhile.
	if ok, err := s.SetNX(ctx, builtKey(dk, dom), bb, ttl); err != nil {
		return nil, fmt.Errorf("rua: %w", err)
	} else if !ok {
		return r.ensureBuilt(ctx, d, dom, now) // another daemon won: use its copy
	}
	r.stats.Built.Add(1)
	return bl, nil
}

type verdict struct {
	auth  Authorization
	dests []Destination
	err   error
}

func (r *Reporter) runDomain(ctx context.Context, d time.Time, dom string, now time.Time, cache map[string]verdict) error {
	bl, err := r.ensureBuilt(ctx, d, dom, now)
	if err != nil || bl == nil {
		return err
	}
	var errs []error
	for _, u := range bl.URIs {
		dest, err := ParseURI(u)
		if err != nil {
			continue
		}
		if err := r.runJob(ctx, d, dom, dest, bl.Report, now, cache); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Jobs returns the outbox jobs of the UTC day of d, for status output
// and tests.
func (r *Reporter) Jobs(ctx context.Context, d time.Time) ([]Job, error) {
	doms, err := r.Collector.Domains(ctx, d)
	if err != nil {
		return nil, err
	}
	var out []Job
	for _, dom := range doms {
		b, ok, err := r.Collector.Store.Get(ctx, builtKey(day(d), dom))
		if err != nil {
			return nil, fmt.Errorf("rua: %w", err)
		}
		if !ok {
			continue
		}
		var bl built
		if json.Unmarshal(b, &bl) != nil {
			continue
		}
		for _, u := range bl.URIs {
			dest, _ := ParseURI(u)
			j, ok, err := r.getJob(ctx, jobKey(day(d), dom, dest.Addr))
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, j)
			}
		}
	}
	return out, nil
}

func (r *Reporter) getJob(ctx context.Context, key string) (Job, bool, error) {
	b, ok, err := r.Collector.Store.Get(ctx, key)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("rua: %w", err)
		}
		return Job{}, false, err
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return Job{}, false, fmt.Errorf("rua: job %s: %w", key, err)
	}
	return j, true, nil
}

func (r *Reporter) putJob(ctx context.Context, key string, j Job) error {
	b, _ := json.Marshal(j)
	if err := r.Collector.Store.Set(ctx, key, b, r.Collector.ttl()); err != nil {
		return fmt.Errorf("rua: record job %s: %w", key, err)
	}
	return nil
}

func backoff(attempts int) time.Duration {
	d := 10 * time.Minute << min(attempts, 6)
	return min(d, 6*time.Hour)
}

func (r *Reporter) runJob(ctx context.Context, d time.Time, dom string, dest Destination, rep *Report, now time.Time, cache map[string]verdict) error {
	s := r.Collector.Store
	key := jobKey(day(d), dom, dest.Addr)
	j, ok, err := r.getJob(ctx, key)
	if err != nil || !ok {
		return err
	}
	switch j.State {
	case StateSent, StateGivenUp:
		return nil
	case StateSending:
		if now.Before(j.LeaseUntil) {
			return nil // another sender is on it
		}
		// The sender died between the final "." and recording the MTA's
		// answer: close the job without resending (see State).
		j.State, j.SentAt, j.Unconfirmed = StateSent, j.LeaseUntil, true
		r.stats.Unconfirmed.Add(1)
		r.log().Warn("dmarc report: delivery unconfirmed, not resent", "id", j.ReportID, "domain", dom, "to", j.To)
		return r.putJob(ctx, key, j)
	}
	// A report is retried until GiveUpAfter past the end of its day, so
	// that Run's window of days covers every job that can still be sent.
	if !now.Before(d.Add(24*time.Hour + r.giveUp())) {
		j.State = StateGivenUp
		r.stats.GivenUp.Add(1)
		r.log().Warn("dmarc report: given up", "id", j.ReportID, "domain", dom, "to", j.To, "attempts", j.Attempts, "last_error", j.LastError)
		return r.putJob(ctx, key, j)
	}
	if now.Before(j.NextTry) {
		return nil
	}
	// One sender per job, also across daemons sharing a Redis store.
	lk := lockKey(key)
	if got, err := s.SetNX(ctx, lk, []byte(now.UTC().Format(time.RFC3339)), r.lease()); err != nil {
		return fmt.Errorf("rua: %w", err)
	} else if !got {
		return nil
	}
	defer s.Delete(context.WithoutCancel(ctx), lk)

	retry := func(msg string) error {
		j.Attempts++
		j.LastError = msg
		j.NextTry = now.Add(backoff(j.Attempts))
		r.stats.Retries.Add(1)
		return r.putJob(ctx, key, j)
	}

	// RFC 7489 §7.1: external destinations must agree to receive.
	ck := dom + "\x00" + dest.Host
	v, ok := cache[ck] // per host: the answer does not depend on the mailbox
	if !ok {
		v.auth, v.dests, v.err = r.Verifier.Verify(ctx, dom, dest)
		cache[ck] = v
	}
	switch v.auth {
	case TempError:
		return errors.Join(v.err, retry("verification temperror: "+fmt.Sprint(v.err)))
	case Unauthorized:
		j.State, j.LastError = StateGivenUp, "external destination not authorized (RFC 7489 §7.1)"
		r.stats.Unauthorized.Add(1)
		r.log().Info("dmarc report: destination not authorized", "domain", dom, "to", dest.Addr)
		return r.putJob(ctx, key, j)
	}
	to := dest
	if len(v.dests) > 0 {
		to = v.dests[0] // a same-host override from the verification record
	}
	j.To = to.Addr
	msg := rep.Compose(r.from(), to.Addr, now)
	notice := false
	if to.MaxSize > 0 && int64(len(msg)) > to.MaxSize {
		// RFC 7489 §6.2: the limit is on the message as sent.
		msg = rep.Notice(r.from(), to.Addr, int64(len(msg)), to.MaxSize, now)
		notice = true
	}
	commit := func() error {
		c := j
		c.State, c.LeaseUntil, c.Attempts = StateSending, now.Add(r.lease()), j.Attempts+1
		return r.putJob(ctx, key, c)
	}
	err = r.Transport.Send(ctx, r.from(), to.Addr, msg, commit)
	var se *SendError
	switch {
	case err == nil:
		j.State, j.SentAt, j.Attempts, j.Notice, j.LastError = StateSent, now, j.Attempts+1, notice, ""
		if notice {
			r.stats.Notices.Add(1)
		} else {
			r.stats.Sent.Add(1)
		}
		r.log().Info("dmarc report sent", "id", j.ReportID, "domain", dom, "to", to.Addr, "bytes", len(msg), "notice", notice)
		return r.putJob(ctx, key, j)
	case errors.As(err, &se) && se.Committed:
		// Unknown outcome: the job stays "sending" (see State).
		return err
	default:
		return errors.Join(err, retry(err.Error()))
	}
}
