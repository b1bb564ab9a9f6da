package quarantine

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/charset"
)

// DefaultRetention is how long a category's items are kept when the
// configuration says nothing.
var DefaultRetention = map[Category]time.Duration{
	CategorySpam:      14 * 24 * time.Hour,
	CategoryVirus:     30 * 24 * time.Hour,
	CategoryPolicy:    14 * 24 * time.Hour,
	CategoryDMARC:     14 * 24 * time.Hour,
	CategoryLimit:     14 * 24 * time.Hour,
	CategoryAutoreply: 14 * 24 * time.Hour,
}

// File is what Put writes the message to; *os.File is one. Tests inject a
// failing one (a full disk).
type File interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

// Config builds a Quarantine.
type Config struct {
	Dir   string // where the messages are kept
	Index Index
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Retention per category; a category missing here gets
	// DefaultRetention.
	Retention map[Category]time.Duration
	// MaxBytes caps the bytes kept on disk (compressed); the oldest items
	// expire first. 0: no cap.
	MaxBytes int64
	// KeepRecord is how long an index entry stays after its copy was
	// removed (so the page and the audit can show what happened);
	// default 30 days.
	KeepRecord time.Duration
	// Releaser re-injects released messages (store mode).
	Releaser Releaser
	// Hold acts on the MTA's hold queue (hold mode).
	Hold *HoldQueue
	// CreateTemp opens a new temporary file in dir; nil means
	// os.CreateTemp.
	CreateTemp func(dir, pattern string) (File, error)
	Logger     *slog.Logger
	// Observer counts events for the metrics; nil counts nothing.
	Observer Observer
}

// Observer is the metrics seam: the daemon implements it with its metrics
// library, so this package depends on none. Gauges (items, bytes, oldest
// age) come from Stats at scrape time.
type Observer interface {
	Quarantined(c Category, m Mode)
	Acted(act Action, r Role, c Category) // release, delete, expire, view, login, ...
	DigestSent()
	// LeftToMTA counts a message the store did not keep and left to the
	// MTA's hold queue: why is "too-big" or "store-failed".
	LeftToMTA(c Category, why string)
}

type nopObserver struct{}

func (nopObserver) Quarantined(Category, Mode)   {}
func (nopObserver) Acted(Action, Role, Category) {}
func (nopObserver) DigestSent()                  {}
func (nopObserver) LeftToMTA(Category, string)   {}

// Quarantine is the store service. Build it once in the daemon; it is
// safe for concurrent use.
type Quarantine struct {
	cfg Config
	// act serialises release and delete, so that two clicks on "release"
	// deliver once.
	act sync.Mutex
}

// New checks cfg and returns the service; it creates Dir.
func New(cfg Config) (*Quarantine, error) {
	if cfg.Index == nil {
		return nil, errors.New("quarantine: no index")
	}
	if cfg.Dir == "" && cfg.Hold == nil {
		return nil, errors.New("quarantine: no directory")
	}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, &StoreError{"mkdir", err}
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeepRecord == 0 {
		cfg.KeepRecord = 30 * 24 * time.Hour
	}
	if cfg.CreateTemp == nil {
		cfg.CreateTemp = func(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Quarantine{cfg: cfg}, nil
}

// LeftToMTA records that a message to quarantine was left to the MTA's
// hold queue instead (metrics); the caller logs why.
func (q *Quarantine) LeftToMTA(c Category, why string) { q.cfg.Observer.LeftToMTA(c, why) }

// Index returns the index (for the digest and the web page).
func (q *Quarantine) Index() Index { return q.cfg.Index }

// Now returns the service's clock.
func (q *Quarantine) Now() time.Time { return q.cfg.Now() }

// Retention returns how long items of c are kept.
func (q *Quarantine) Retention(c Category) time.Duration {
	if d, ok := q.cfg.Retention[c]; ok {
		return d
	}
	return DefaultRetention[c]
}

func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func (q *Quarantine) path(id string) string {
	return filepath.Join(q.cfg.Dir, id[:2], id+".eml.gz")
}

func newItem(m Meta, mode Mode, now time.Time) (*Item, error) {
	if len(m.Recipients) == 0 {
		return nil, errors.New("quarantine: no recipient")
	}
	if m.Category == 0 {
		return nil, errors.New("quarantine: no category")
	}
	t := m.Time
	if t.IsZero() {
		t = now
	}
	it := &Item{
		ID: newID(), Mode: mode, Time: t.UTC(), QueueID: m.QueueID, Client: m.Client, HELO: m.HELO,
		MailFrom: m.MailFrom, Category: m.Category, Score: m.Score, Reasons: slices.Clone(m.Reasons),
		From: m.From, Subject: m.Subject,
	}
	for _, r := range m.Recipients {
		if it.Recipient(r) != nil {
			continue
		}
		it.Recipients = append(it.Recipients, Recipient{Addr: r, State: StateHeld, At: it.Time})
	}
	return it, nil
}

// Put keeps the message read from raw for the recipients of m and returns
// the new item once the message file and the index entry are synced. An
// error wraps ErrUnavailable when the disk or the index failed, and
// nothing is left behind.
func (q *Quarantine) Put(ctx context.Context, m Meta, raw io.Reader) (*Item, error) {
	if q.cfg.Dir == "" {
		return nil, errors.New("quarantine: store mode needs a directory")
	}
	it, err := newItem(m, ModeStore, q.cfg.Now())
	if err != nil {
		return nil, err
	}
	sub := filepath.Join(q.cfg.Dir, it.ID[:2])
	if err := os.MkdirAll(sub, 0o750); err != nil {
		return nil, &StoreError{"mkdir", err}
	}
	f, err := q.cfg.CreateTemp(sub, ".tmp-*")
	if err != nil {
		return nil, &StoreError{"create", err}
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	head := &headBuffer{max: 64 << 10}
	cw := &countWriter{w: f}
	zw := gzip.NewWriter(cw)
	n, err := io.Copy(io.MultiWriter(zw, h, head), raw)
	if err != nil {
		if errors.Is(err, errWrite) {
			return nil, &StoreError{"write", err}
		}
		return nil, fmt.Errorf("quarantine: reading the message: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, &StoreError{"write", err}
	}
	if err := f.Sync(); err != nil {
		return nil, &StoreError{"sync", err}
	}
	if err := f.Close(); err != nil {
		return nil, &StoreError{"close", err}
	}
	it.Size, it.Stored, it.SHA256 = n, cw.n, hex.EncodeToString(h.Sum(nil))
	if it.From == "" || it.Subject == "" {
		from, subj := headerFromSubject(head.Bytes())
		if it.From == "" {
			it.From = from
		}
		if it.Subject == "" {
			it.Subject = subj
		}
	}
	final := q.path(it.ID)
	if err := os.Rename(tmp, final); err != nil {
		return nil, &StoreError{"rename", err}
	}
	if err := syncDir(sub); err != nil {
		os.Remove(final)
		return nil, &StoreError{"sync", err}
	}
	if err := q.cfg.Index.Put(ctx, it); err != nil {
		os.Remove(final)
		return nil, err
	}
	ok = true
	q.cfg.Observer.Quarantined(it.Category, it.Mode)
	q.cfg.Logger.Info("quarantined", "id", it.ID, "queue_id", it.QueueID, "category", it.Category.String(),
		"recipients", len(it.Recipients), "size", it.Size)
	return it, nil
}

// PutHeld records a message that the MTA keeps in its hold queue (hold
// mode); m.QueueID is required.
func (q *Quarantine) PutHeld(ctx context.Context, m Meta) (*Item, error) {
	if m.QueueID == "" {
		return nil, errors.New("quarantine: hold mode needs the queue id")
	}
	it, err := newItem(m, ModeHold, q.cfg.Now())
	if err != nil {
		return nil, err
	}
	if err := q.cfg.Index.Put(ctx, it); err != nil {
		return nil, err
	}
	q.cfg.Observer.Quarantined(it.Category, it.Mode)
	return it, nil
}

var errWrite = errors.New("write failed")

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("%w: %w", errWrite, err)
	}
	return n, nil
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	bytes.Buffer
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - h.Len(); room > 0 {
		h.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// headerFromSubject reads From and Subject from the start of a message,
// decoding RFC 2047 encoded words; a broken header gives what it can.
func headerFromSubject(b []byte) (from, subject string) {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	h, _ := r.ReadMIMEHeader()
	dec := func(s string) string {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, s)
	}
	return dec(h.Get("From")), dec(h.Get("Subject"))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get returns an item the actor may see; items the actor may not see are
// ErrNotFound, so that a user cannot learn whether an id exists.
func (q *Quarantine) Get(ctx context.Context, id string, a Actor) (*Item, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	it, err := q.cfg.Index.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !a.Sees(it) {
		return nil, ErrNotFound
	}
	return it, nil
}

// Open returns the message as received. Virus items are shown to admins
// only, and audited.
func (q *Quarantine) Open(ctx context.Context, id string, a Actor) (*Item, io.ReadCloser, error) {
	it, err := q.Get(ctx, id, a)
	if err != nil {
		return nil, nil, err
	}
	if a.Role == RoleUser {
		if err := a.May(ActionView, it, a.firstOwned(it)); err != nil {
			return nil, nil, err
		}
	}
	rc, err := q.open(it)
	if err != nil {
		return nil, nil, err
	}
	if it.Category == CategoryVirus {
		q.audit(ctx, a, ActionView, it, "", "")
	}
	return it, rc, nil
}

func (a Actor) firstOwned(it *Item) string {
	for _, r := range it.Recipients {
		if a.owns(r.Addr) {
			return r.Addr
		}
	}
	return ""
}

func (q *Quarantine) open(it *Item) (io.ReadCloser, error) {
	if it.Mode != ModeStore || !it.Purged.IsZero() {
		return nil, ErrGone
	}
	f, err := os.Open(q.path(it.ID))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrGone
		}
		return nil, &StoreError{"open", err}
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, &StoreError{"open", err}
	}
	return &gzFile{zr, f}, nil
}

type gzFile struct {
	*gzip.Reader
	f *os.File
}

func (g *gzFile) Close() error {
	g.Reader.Close()
	return g.f.Close()
}

// Filter selects items for List.
type Filter struct {
	Category Category  // 0: any
	State    State     // 0: any; else an item with a (visible) recipient in this state
	Query    string    // case-insensitive substring of id, queue id, sender, recipients, From, Subject, reasons
	Since    time.Time // received at or after
	Limit    int       // 0: no limit
}

// List returns the items the actor sees that match f, newest first.
func (q *Quarantine) List(ctx context.Context, a Actor, f Filter) ([]*Item, error) {
	var out []*Item
	query := strings.ToLower(f.Query)
	err := q.cfg.Index.Scan(ctx, func(it *Item) bool {
		if !a.Sees(it) || (f.Category != 0 && it.Category != f.Category) ||
			(!f.Since.IsZero() && it.Time.Before(f.Since)) {
			return true
		}
		if f.State != 0 && !slices.ContainsFunc(it.Recipients, func(r Recipient) bool {
			return r.State == f.State && (a.Role != RoleUser || a.owns(r.Addr))
		}) {
			return true
		}
		if query != "" && !strings.Contains(strings.ToLower(searchText(it)), query) {
			return true
		}
		out = append(out, it)
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y *Item) int {
		if c := y.Time.Compare(x.Time); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func searchText(it *Item) string {
	var b strings.Builder
	for _, s := range []string{it.ID, it.QueueID, it.MailFrom, it.From, it.Subject, it.Client, it.HELO} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for _, r := range it.Recipients {
		b.WriteString(r.Addr)
		b.WriteByte(0)
	}
	for _, r := range it.Reasons {
		b.WriteString(r)
		b.WriteByte(0)
	}
	return b.String()
}

// Audit returns the last n audit entries, newest first.
func (q *Quarantine) Audit(ctx context.Context, n int) ([]AuditEntry, error) {
	return q.cfg.Index.Audit(ctx, n)
}

// Record adds an audit entry for an action done elsewhere (allow, deny,
// learn, login).
func (q *Quarantine) Record(ctx context.Context, a Actor, act Action, it *Item, rcpt, detail string) {
	q.audit(ctx, a, act, it, rcpt, detail)
}

func (q *Quarantine) audit(ctx context.Context, a Actor, act Action, it *Item, rcpt, detail string) {
	e := AuditEntry{Time: q.cfg.Now().UTC(), Actor: a.Name, Role: a.Role, Action: act, Rcpt: rcpt, Detail: detail}
	if it != nil {
		e.ID, e.Category = it.ID, it.Category
	}
	q.cfg.Observer.Acted(act, a.Role, e.Category)
	if err := q.cfg.Index.AppendAudit(ctx, e); err != nil {
		q.cfg.Logger.Error("quarantine audit", "err", err)
	}
	q.cfg.Logger.Info("quarantine action", "actor", a.Name, "role", a.Role.String(), "action", act.String(),
		"id", e.ID, "rcpt", rcpt, "detail", detail)
}

// Maintain runs the expiry job and, when d is not nil, the digest: once
// at start and then at every tick, until ctx ends. The daemon passes a
// time.Ticker's channel (hourly); errors are logged, never fatal.
func (q *Quarantine) Maintain(ctx context.Context, d *Digest, tick <-chan time.Time) {
	run := func() {
		rep, err := q.Expire(ctx)
		if err != nil {
			q.cfg.Logger.Error("quarantine expiry", "err", err)
		}
		if rep.Expired+rep.Capped+rep.Removed > 0 {
			q.cfg.Logger.Info("quarantine expiry", "expired", rep.Expired, "capped", rep.Capped,
				"removed", rep.Removed, "bytes", rep.Bytes)
		}
		if d == nil {
			return
		}
		drep, err := d.Run(ctx)
		if err != nil {
			q.cfg.Logger.Error("quarantine digest", "err", err)
		}
		if drep.Sent > 0 {
			q.cfg.Logger.Info("quarantine digest", "sent", drep.Sent, "items", drep.Items)
		}
	}
	run()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			run()
		}
	}
}
