package quarantine

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// released is one call of the fake releaser.
type released struct {
	id, rcpt, by string
	msg          []byte
}

type fakeReleaser struct {
	mu   sync.Mutex
	got  []released
	fail error
}

func (f *fakeReleaser) Release(ctx context.Context, it *Item, rcpt string, msg io.Reader, by string) error {
	if f.fail != nil {
		return f.fail
	}
	b, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.got = append(f.got, released{it.ID, rcpt, by, b})
	f.mu.Unlock()
	return nil
}

type env struct {
	q   *Quarantine
	clk *clock
	rel *fakeReleaser
	ix  *BoltIndex
	dir string
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	ix, err := OpenBolt(filepath.Join(dir, "index.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	e := &env{clk: &clock{t: t0}, rel: &fakeReleaser{}, ix: ix, dir: filepath.Join(dir, "msg")}
	cfg := Config{Dir: e.dir, Index: ix, Now: e.clk.Now, Releaser: e.rel}
	if mod != nil {
		mod(&cfg)
	}
	e.q, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const sample = "From: =?utf-8?q?J=C3=BCrgen?= <j@spam.example>\r\n" +
	"To: a@example.org, b@example.org\r\n" +
	"Subject: =?utf-8?b?R2V3aW5uIQ==?=\r\n" +
	"Message-ID: <1@spam.example>\r\n\r\n" +
	"You won.\r\n.dot line\r\n"

var admin = Actor{Name: "admin", Role: RoleAdmin}

func user(addrs ...string) Actor { return Actor{Name: addrs[0], Role: RoleUser, Addrs: addrs} }

func (e *env) put(t *testing.T, cat Category, rcpts ...string) *Item {
	t.Helper()
	it, err := e.q.Put(context.Background(), Meta{QueueID: "4F2A1B3C9D", Client: "192.0.2.7", HELO: "spam.example",
		MailFrom: "bounce@spam.example", Recipients: rcpts, Category: cat, Score: 12.5, Reasons: []string{"spam-score"}},
		strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func TestPutStoresSyncedCompressedAndIndexed(t *testing.T) {
	e := newEnv(t, nil)
	it := e.put(t, CategorySpam, "a@example.org", "B@example.org", "a@example.org")
	if len(it.ID) != 32 || !validID(it.ID) {
		t.Fatalf("id %q: want 32 lower-case hex digits", it.ID)
	}
	sum := sha256.Sum256([]byte(sample))
	if it.SHA256 != hex.EncodeToString(sum[:]) || it.Size != int64(len(sample)) {
		t.Errorf("sha256/size = %s/%d", it.SHA256, it.Size)
	}
	if it.From != "Jürgen <j@spam.example>" || it.Subject != "Gewinn!" {
		t.Errorf("decoded From/Subject = %q / %q", it.From, it.Subject)
	}
	if len(it.Recipients) != 2 || it.Recipients[0].State != StateHeld {
		t.Errorf("recipients = %+v (duplicates must fold)", it.Recipients)
	}
	f, err := os.Open(filepath.Join(e.dir, it.ID[:2], it.ID+".eml.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("stored file is not gzip: %v", err)
	}
	raw, _ := io.ReadAll(zr)
	if string(raw) != sample {
		t.Errorf("stored message differs")
	}
	got, err := e.ix.Get(context.Background(), it.ID)
	if err != nil || got.QueueID != "4F2A1B3C9D" || got.Category != CategorySpam || got.Stored == 0 {
		t.Fatalf("index entry %+v, %v", got, err)
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir, it.ID[:2]))
	if len(ents) != 1 {
		t.Errorf("left %d files in the fan-out dir, want only the message", len(ents))
	}
	_, rc, err := e.q.Open(context.Background(), it.ID, admin)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != sample {
		t.Error("Open does not return the message as received")
	}
}

type failFile struct {
	f   *os.File
	err error
}

func (f *failFile) Write(p []byte) (int, error) { return 0, f.err }
func (f *failFile) Sync() error                 { return nil }
func (f *failFile) Close() error                { return f.f.Close() }
func (f *failFile) Name() string                { return f.f.Name() }

func TestPutFullDiskIsTemporaryAndLeavesNothing(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.CreateTemp = func(dir, pattern string) (File, error) {
			f, err := os.CreateTemp(dir, pattern)
			if err != nil {
				return nil, err
			}
			return &failFile{f: f, err: &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}}, nil
		}
	})
	// bigger than gzip's buffer, so the write reaches the file
	big := sample + strings.Repeat("x", 1<<20)
	_, err := e.q.Put(context.Background(), Meta{Recipients: []string{"a@example.org"}, Category: CategorySpam}, strings.NewReader(big))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ErrUnavailable wrapping ENOSPC", err)
	}
	var se *StoreError
	if !errors.As(err, &se) || !se.Temporary() {
		t.Errorf("want a temporary StoreError, got %T", err)
	}
	n := 0
	filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if d != nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n != 0 {
		t.Errorf("%d files left behind", n)
	}
	s, _ := e.q.Stats(context.Background())
	if s.Items != 0 {
		t.Errorf("index has %d items after a failed put", s.Items)
	}
}

func TestPutReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only directories; TestPutFullDisk covers the error path")
	}
	e := newEnv(t, nil)
	os.Chmod(e.dir, 0o500)
	defer os.Chmod(e.dir, 0o700)
	_, err := e.q.Put(context.Background(), Meta{Recipients: []string{"a@example.org"}, Category: CategorySpam}, strings.NewReader(sample))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestPutIndexFailureRemovesFile(t *testing.T) {
	e := newEnv(t, nil)
	e.ix.Close()
	_, err := e.q.Put(context.Background(), Meta{Recipients: []string{"a@example.org"}, Category: CategorySpam}, strings.NewReader(sample))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if d != nil && !d.IsDir() {
			t.Errorf("left %s", p)
		}
		return nil
	})
}

func TestPutRejectsBadMeta(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.q.Put(context.Background(), Meta{Category: CategorySpam}, strings.NewReader(sample)); err == nil {
		t.Error("no recipient accepted")
	}
	if _, err := e.q.Put(context.Background(), Meta{Recipients: []string{"a@x"}}, strings.NewReader(sample)); err == nil {
		t.Error("no category accepted")
	}
}

func TestTransitions(t *testing.T) {
	all := []State{StateHeld, StateReleased, StateDeleted, StateExpired}
	allowed := map[[2]State]bool{
		{StateHeld, StateReleased}: true, {StateHeld, StateDeleted}: true, {StateHeld, StateExpired}: true,
		{StateReleased, StateDeleted}: true, {StateReleased, StateExpired}: true,
	}
	for _, from := range all {
		for _, to := range all {
			it := &Item{ID: "x", Recipients: []Recipient{{Addr: "A@x", State: from}}}
			err := transition(it, "a@X", to, "bob", t0)
			if allowed[[2]State{from, to}] {
				if err != nil || it.Recipients[0].State != to || it.Recipients[0].By != "bob" || !it.Recipients[0].At.Equal(t0) {
					t.Errorf("%s→%s: %v %+v", from, to, err, it.Recipients[0])
				}
			} else {
				var te *TransitionError
				if !errors.As(err, &te) || it.Recipients[0].State != from {
					t.Errorf("%s→%s allowed (err %v)", from, to, err)
				}
			}
		}
	}
	if err := transition(&Item{}, "nobody@x", StateReleased, "", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown recipient: %v", err)
	}
}

func TestReleasePerRecipient(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	it := e.put(t, CategorySpam, "a@example.org", "b@example.org")
	e.clk.Add(time.Hour)
	got, err := e.q.Release(ctx, it.ID, "a@example.org", user("a@example.org"))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.rel.got) != 1 || e.rel.got[0].rcpt != "a@example.org" || e.rel.got[0].by != "a@example.org" || string(e.rel.got[0].msg) != sample {
		t.Fatalf("releaser got %+v", e.rel.got)
	}
	r := got.Recipient("a@example.org")
	if r.State != StateReleased || r.By != "a@example.org" || !r.At.Equal(t0.Add(time.Hour)) {
		t.Errorf("a: %+v", r)
	}
	if got.Recipient("b@example.org").State != StateHeld {
		t.Error("b was released too")
	}
	if !got.Purged.IsZero() {
		t.Error("copy removed while b is still held")
	}
	// twice: refused, nothing sent
	if _, err := e.q.Release(ctx, it.ID, "a@example.org", user("a@example.org")); err == nil {
		t.Error("second release accepted")
	}
	if len(e.rel.got) != 1 {
		t.Error("second release sent mail")
	}
	got, err = e.q.Delete(ctx, it.ID, "", admin)
	if err != nil {
		t.Fatal(err)
	}
	if got.Recipient("b@example.org").State != StateDeleted || got.Recipient("a@example.org").State != StateReleased {
		t.Errorf("after delete: %+v", got.Recipients)
	}
	if got.Purged.IsZero() {
		t.Error("copy kept with no recipient held")
	}
	if _, err := os.Stat(filepath.Join(e.dir, it.ID[:2], it.ID+".eml.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there: %v", err)
	}
	if _, _, err := e.q.Open(ctx, it.ID, admin); !errors.Is(err, ErrGone) {
		t.Errorf("Open after purge: %v", err)
	}
	log, _ := e.q.Audit(ctx, 10)
	var acts []string
	for _, a := range log {
		acts = append(acts, a.Action.String()+":"+a.Actor+":"+a.Rcpt)
	}
	want := []string{"delete:admin:b@example.org", "release:a@example.org:a@example.org"}
	if !slices.Equal(acts, want) {
		t.Errorf("audit = %v, want %v", acts, want)
	}
}

func TestReleaseFailureKeepsHeld(t *testing.T) {
	e := newEnv(t, nil)
	it := e.put(t, CategorySpam, "a@example.org")
	e.rel.fail = errors.New("451 try later")
	if _, err := e.q.Release(context.Background(), it.ID, "", admin); err == nil {
		t.Fatal("release succeeded with a failing MTA")
	}
	got, _ := e.ix.Get(context.Background(), it.ID)
	if got.Recipients[0].State != StateHeld || !got.Purged.IsZero() {
		t.Errorf("after failed release: %+v", got)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	mine := e.put(t, CategorySpam, "a@example.org")
	theirs := e.put(t, CategorySpam, "b@example.org")
	virus := e.put(t, CategoryVirus, "a@example.org")
	limit := e.put(t, CategoryLimit, "a@example.org")
	a := user("a@example.org")

	if _, err := e.q.Get(ctx, theirs.ID, a); !errors.Is(err, ErrNotFound) {
		t.Errorf("user sees another's item: %v", err)
	}
	if _, _, err := e.q.Open(ctx, theirs.ID, a); !errors.Is(err, ErrNotFound) {
		t.Errorf("user opens another's item: %v", err)
	}
	if _, err := e.q.Release(ctx, theirs.ID, "b@example.org", a); !errors.Is(err, ErrNotFound) {
		t.Errorf("user releases another's item: %v", err)
	}
	if _, err := e.q.Release(ctx, mine.ID, "b@example.org", a); err == nil {
		t.Error("user releases for an address not theirs")
	}
	if _, err := e.q.Delete(ctx, theirs.ID, "", a); !errors.Is(err, ErrNotFound) {
		t.Errorf("user deletes another's item: %v", err)
	}
	list, err := e.q.List(ctx, a, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range list {
		if it.ID == theirs.ID {
			t.Error("List shows another's item to a user")
		}
	}
	if len(list) != 3 {
		t.Errorf("user list has %d items, want 3", len(list))
	}
	for _, it := range []*Item{virus, limit} {
		if _, err := e.q.Release(ctx, it.ID, "a@example.org", a); !errors.Is(err, ErrForbidden) {
			t.Errorf("user releases a %s item: %v", it.Category, err)
		}
	}
	if _, _, err := e.q.Open(ctx, virus.ID, a); !errors.Is(err, ErrForbidden) {
		t.Errorf("user opens a virus item: %v", err)
	}
	if len(e.rel.got) != 0 {
		t.Fatal("something was released")
	}
	if _, err := e.q.Release(ctx, virus.ID, "", admin); err != nil {
		t.Fatalf("admin releases virus: %v", err)
	}
	log, _ := e.q.Audit(ctx, 1)
	if len(log) != 1 || log[0].Action != ActionRelease || log[0].Role != RoleAdmin || log[0].Category != CategoryVirus {
		t.Errorf("virus release not audited: %+v", log)
	}
	if _, err := e.q.Delete(ctx, mine.ID, "", a); err != nil {
		t.Errorf("user deletes own: %v", err)
	}
	all, _ := e.q.List(ctx, admin, Filter{})
	if len(all) != 4 {
		t.Errorf("admin list has %d items, want 4", len(all))
	}
}

func TestListFilters(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	s := e.put(t, CategorySpam, "a@example.org")
	e.clk.Add(time.Minute)
	v := e.put(t, CategoryVirus, "a@example.org")
	e.clk.Add(time.Minute)
	d := e.put(t, CategoryDMARC, "c@example.org")
	e.q.Delete(ctx, d.ID, "", admin)
	ids := func(f Filter) []string {
		l, err := e.q.List(ctx, admin, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range l {
			out = append(out, it.ID)
		}
		return out
	}
	for name, c := range map[string]struct {
		f    Filter
		want []string
	}{
		"all newest first": {Filter{}, []string{d.ID, v.ID, s.ID}},
		"category":         {Filter{Category: CategoryVirus}, []string{v.ID}},
		"state":            {Filter{State: StateHeld}, []string{v.ID, s.ID}},
		"deleted":          {Filter{State: StateDeleted}, []string{d.ID}},
		"query rcpt":       {Filter{Query: "C@EXAMPLE"}, []string{d.ID}},
		"query subject":    {Filter{Query: "gewinn"}, []string{d.ID, v.ID, s.ID}},
		"query id":         {Filter{Query: s.ID[:12]}, []string{s.ID}},
		"since":            {Filter{Since: t0.Add(time.Minute)}, []string{d.ID, v.ID}},
		"limit":            {Filter{Limit: 1}, []string{d.ID}},
	} {
		if got := ids(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
	}
}

func TestExpireRetentionCapAndRecords(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeepRecord = 24 * time.Hour })
	ctx := context.Background()
	spam := e.put(t, CategorySpam, "a@example.org")
	virus := e.put(t, CategoryVirus, "a@example.org")
	e.clk.Add(14*24*time.Hour - time.Second)
	if rep, _ := e.q.Expire(ctx); rep.Expired != 0 {
		t.Fatalf("expired before 14 days: %+v", rep)
	}
	e.clk.Add(time.Second)
	rep, err := e.q.Expire(ctx)
	if err != nil || rep.Expired != 1 {
		t.Fatalf("at 14 days: %+v %v", rep, err)
	}
	got, _ := e.ix.Get(ctx, spam.ID)
	if got.Recipients[0].State != StateExpired || got.Recipients[0].By != "expiry" || got.Purged.IsZero() {
		t.Errorf("spam after expiry: %+v", got)
	}
	if got, _ := e.ix.Get(ctx, virus.ID); got.Recipients[0].State != StateHeld {
		t.Error("virus expired at 14 days (retention is 30)")
	}
	e.clk.Add(24 * time.Hour)
	rep, _ = e.q.Expire(ctx)
	if rep.Removed != 1 {
		t.Errorf("record not dropped after KeepRecord: %+v", rep)
	}
	if _, err := e.ix.Get(ctx, spam.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("spam record still there: %v", err)
	}
	e.clk.Add(15 * 24 * time.Hour)
	if rep, _ := e.q.Expire(ctx); rep.Expired != 1 {
		t.Errorf("virus not expired at 30 days: %+v", rep)
	}
}

func TestExpireByteCap(t *testing.T) {
	var e *env
	e = newEnv(t, func(c *Config) { c.MaxBytes = 1 })
	ctx := context.Background()
	old := e.put(t, CategorySpam, "a@example.org")
	e.clk.Add(time.Minute)
	mid := e.put(t, CategorySpam, "a@example.org")
	e.clk.Add(time.Minute)
	young := e.put(t, CategorySpam, "a@example.org")
	// cap: room for one item
	e.q.cfg.MaxBytes = young.Stored
	rep, err := e.q.Expire(ctx)
	if err != nil || rep.Capped != 2 || rep.Bytes != young.Stored {
		t.Fatalf("cap: %+v %v", rep, err)
	}
	for id, want := range map[string]State{old.ID: StateExpired, mid.ID: StateExpired, young.ID: StateHeld} {
		if got, _ := e.ix.Get(ctx, id); got.Recipients[0].State != want {
			t.Errorf("%s: %s, want %s", id, got.Recipients[0].State, want)
		}
	}
	st, _ := e.q.Stats(ctx)
	if st.Items != 1 || st.Bytes != young.Stored || !st.Oldest.Equal(young.Time) {
		t.Errorf("stats %+v", st)
	}
}

type cmdLog struct {
	mu   sync.Mutex
	cmds []string
	fail bool
}

func (c *cmdLog) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmds = append(c.cmds, name+" "+strings.Join(args, " "))
	if c.fail {
		return []byte("postsuper: fatal: queue id not found"), errors.New("exit status 1")
	}
	return nil, nil
}

func TestHoldMode(t *testing.T) {
	cl := &cmdLog{}
	e := newEnv(t, func(c *Config) { c.Hold = &HoldQueue{ConfigDir: "/etc/postfix-x", Run: cl.run} })
	ctx := context.Background()
	put := func(qid string, rcpts ...string) *Item {
		it, err := e.q.PutHeld(ctx, Meta{QueueID: qid, MailFrom: "s@x.example", Recipients: rcpts, Category: CategorySpam})
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	if _, err := e.q.PutHeld(ctx, Meta{Recipients: []string{"a@x"}, Category: CategorySpam}); err == nil {
		t.Error("hold item without a queue id accepted")
	}
	shared := put("3F1A2B4C5D", "a@example.org", "b@example.org")
	if _, err := e.q.Release(ctx, shared.ID, "a@example.org", user("a@example.org")); !errors.Is(err, ErrForbidden) {
		t.Errorf("user releases held mail with other recipients: %v", err)
	}
	got, err := e.q.Release(ctx, shared.ID, "", admin)
	if err != nil {
		t.Fatal(err)
	}
	if got.Held() {
		t.Error("recipients still held after postsuper -H")
	}
	own := put("ABCDEF1234", "a@example.org")
	if _, err := e.q.Delete(ctx, own.ID, "", user("a@example.org")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"postsuper -c /etc/postfix-x -H 3F1A2B4C5D", "postqueue -c /etc/postfix-x -i 3F1A2B4C5D",
		"postsuper -c /etc/postfix-x -d ABCDEF1234",
	}
	if !slices.Equal(cl.cmds, want) {
		t.Errorf("commands:\n%q\nwant\n%q", cl.cmds, want)
	}
	if _, _, err := e.q.Open(ctx, own.ID, admin); !errors.Is(err, ErrGone) {
		t.Errorf("open of a hold item: %v", err)
	}
	for _, bad := range []string{"ALL", "-", "ABC DEF123", "../../x123"} {
		if err := e.q.cfg.Hold.Release(ctx, bad); !errors.Is(err, ErrQueueID) {
			t.Errorf("queue id %q accepted: %v", bad, err)
		}
	}
	cl.fail = true
	failing := put("BBBBBB1234", "a@example.org")
	if _, err := e.q.Release(ctx, failing.ID, "", admin); err == nil || !strings.Contains(err.Error(), "queue id not found") {
		t.Errorf("failing postsuper: %v", err)
	}
	if got, _ := e.ix.Get(ctx, failing.ID); !got.Held() {
		t.Error("marked released although postsuper failed")
	}
}

func TestSignerLinks(t *testing.T) {
	s, err := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewSigner([]byte("fedcba9876543210fedcba9876543210"))
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("short secret accepted")
	}
	tok := s.Link("A@Example.org", t0.Add(7*24*time.Hour))
	if a, err := s.VerifyLink(tok, t0.Add(7*24*time.Hour-time.Second)); err != nil || a != "a@example.org" {
		t.Errorf("valid link: %q %v", a, err)
	}
	if _, err := s.VerifyLink(tok, t0.Add(7*24*time.Hour)); !errors.Is(err, ErrLinkExpired) {
		t.Errorf("expired link: %v", err)
	}
	parts := strings.Split(tok, ".")
	forged := b64.EncodeToString([]byte("b@example.org")) + "." + parts[1] + "." + parts[2]
	later := parts[0] + ".zzzzzz." + parts[2]
	for name, bad := range map[string]string{
		"other address": forged, "longer expiry": later, "other key": other.Link("a@example.org", t0.Add(time.Hour)),
		"session token as link": s.Token("session", "a@example.org", t0.Add(time.Hour)),
		"garbage":               "abc", "empty": "", "flipped mac": tok[:len(tok)-2] + "AA",
	} {
		if _, err := s.VerifyLink(bad, t0); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	v := s.ReleaseValue("0123", "A@example.org", "admin", t0)
	if err := s.VerifyRelease(v, "a@example.org"); err != nil {
		t.Errorf("release header: %v", err)
	}
	if err := s.VerifyRelease(v, "b@example.org"); err == nil {
		t.Error("release header verified for another recipient")
	}
	if err := s.VerifyRelease(strings.Replace(v, "by=admin", "by=eve", 1), "a@example.org"); err == nil {
		t.Error("tampered release header verified")
	}
	if err := other.VerifyRelease(v, "a@example.org"); err == nil {
		t.Error("release header verified with another secret")
	}
}

func FuzzVerifyToken(f *testing.F) {
	s, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	f.Add(s.Link("a@example.org", t0.Add(time.Hour)))
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		s.VerifyLink(tok, t0)
		s.VerifyRelease(tok, "a@example.org")
	})
}

func FuzzHeaderFromSubject(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("Subject: =?x-unknown?q?abc?=\r\nFrom: \x00\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		from, subj := headerFromSubject(b)
		if strings.ContainsAny(from+subj, "\r\n\x00") {
			t.Errorf("control characters left: %q %q", from, subj)
		}
	})
}

// smtpServer is a minimal SMTP receiver for the release and digest tests.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	from string
	to   []string
	data string
	done chan struct{}
}

func startSMTP(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, done: make(chan struct{}, 4)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := func(l string) { io.WriteString(c, l+"\r\n") }
	w("220 test")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			w("250 test")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			s.mu.Lock()
			s.from = strings.Trim(strings.TrimSpace(line)[10:], "<>")
			s.mu.Unlock()
			w("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			s.mu.Lock()
			s.to = append(s.to, strings.Trim(strings.TrimSpace(line)[8:], "<>"))
			s.mu.Unlock()
			w("250 ok")
		case cmd == "DATA":
			w("354 go")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			s.mu.Lock()
			s.data = b.String()
			s.mu.Unlock()
			w("250 queued")
			s.done <- struct{}{}
		case cmd == "QUIT":
			w("221 bye")
			return
		default:
			w("250 ok")
		}
	}
}

func TestSMTPReleaser(t *testing.T) {
	srv := startSMTP(t)
	sg, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	e := newEnv(t, func(c *Config) {
		c.Releaser = &SMTPReleaser{Addr: srv.ln.Addr().String(), Signer: sg, Now: func() time.Time { return t0 }}
	})
	it := e.put(t, CategorySpam, "a@example.org", "b@example.org")
	if _, err := e.q.Release(context.Background(), it.ID, "b@example.org", admin); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.from != "bounce@spam.example" || !slices.Equal(srv.to, []string{"b@example.org"}) {
		t.Errorf("envelope %q → %q", srv.from, srv.to)
	}
	hdr, rest, _ := strings.Cut(srv.data, "\r\n")
	name, val, _ := strings.Cut(hdr, ": ")
	if name != ReleaseHeader || sg.VerifyRelease(val, "b@example.org") != nil {
		t.Errorf("first line %q: want a valid release header", hdr)
	}
	if rest != sample {
		t.Errorf("message changed in transit:\n%q", rest)
	}
}

func TestDigest(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	sg, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	type sent struct {
		to  string
		msg string
	}
	var got []sent
	d := &Digest{Q: e.q, Signer: sg, BaseURL: "https://mx.example.org/q/", From: "postmaster@example.org",
		Local: func(a string) bool { return strings.HasSuffix(a, "@example.org") },
		Send: func(ctx context.Context, from string, to []string, msg []byte) error {
			got = append(got, sent{to[0], string(msg)})
			return nil
		}}
	first := e.put(t, CategorySpam, "a@example.org", "b@example.org", "x@elsewhere.example")
	e.q.Release(ctx, first.ID, "b@example.org", admin)
	rep, err := d.Run(ctx)
	if err != nil || rep.Sent != 1 || len(got) != 1 || got[0].to != "a@example.org" {
		t.Fatalf("first run: %+v %v %v", rep, err, got)
	}
	m := got[0].msg
	for _, want := range []string{"Auto-Submitted: auto-generated", first.ID, "https://mx.example.org/q/login/"} {
		if !strings.Contains(strings.ReplaceAll(m, "=\r\n", ""), want) {
			t.Errorf("digest lacks %q", want)
		}
	}
	// the link in it signs a@example.org in
	body := strings.ReplaceAll(strings.ReplaceAll(m, "=\r\n", ""), "=3D", "=")
	i := strings.Index(body, "/login/")
	tok := strings.Fields(body[i+7:])[0]
	tok, _, _ = strings.Cut(tok, "?")
	if a, err := sg.VerifyLink(tok, t0.Add(6*24*time.Hour)); err != nil || a != "a@example.org" {
		t.Errorf("digest link: %q %v", a, err)
	}
	if _, err := sg.VerifyLink(tok, t0.Add(7*24*time.Hour+time.Second)); !errors.Is(err, ErrLinkExpired) {
		t.Errorf("digest link after 7 days: %v", err)
	}
	// same day: nothing
	e.clk.Add(2 * time.Hour)
	second := e.put(t, CategorySpam, "a@example.org")
	if rep, _ := d.Run(ctx); rep.Sent != 0 {
		t.Errorf("second digest within a day: %+v", rep)
	}
	// next day: only the new item
	e.clk.Add(22 * time.Hour)
	got = nil
	rep, _ = d.Run(ctx)
	if rep.Sent != 1 || rep.Items != 1 || !strings.Contains(got[0].msg, second.ID) || strings.Contains(got[0].msg, first.ID) {
		t.Errorf("next day: %+v", rep)
	}
	// off: nothing; weekly: once a week
	e.ix.SetPref(ctx, "A@example.org", Pref{Digest: FrequencyOff})
	e.put(t, CategorySpam, "a@example.org")
	e.clk.Add(48 * time.Hour)
	if rep, _ := d.Run(ctx); rep.Sent != 0 {
		t.Errorf("digest sent to a user who turned it off")
	}
	e.ix.SetPref(ctx, "a@example.org", Pref{Digest: FrequencyWeekly, LastDigest: e.clk.Now().Add(-3 * 24 * time.Hour)})
	if rep, _ := d.Run(ctx); rep.Sent != 0 {
		t.Errorf("weekly digest after 3 days")
	}
	e.clk.Add(4 * 24 * time.Hour)
	if rep, _ := d.Run(ctx); rep.Sent != 1 {
		t.Errorf("weekly digest after 7 days: %+v", rep)
	}
}

func TestDigestOverSMTP(t *testing.T) {
	srv := startSMTP(t)
	e := newEnv(t, nil)
	sg, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	e.put(t, CategorySpam, "a@example.org")
	d := &Digest{Q: e.q, Signer: sg, BaseURL: "http://127.0.0.1:8025/", From: "postmaster@example.org", Addr: srv.ln.Addr().String()}
	if rep, err := d.Run(context.Background()); err != nil || rep.Sent != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	<-srv.done
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.from != "postmaster@example.org" || !slices.Equal(srv.to, []string{"a@example.org"}) || !strings.Contains(srv.data, "Subject: ") {
		t.Errorf("sent %q → %q:\n%s", srv.from, srv.to, srv.data)
	}
}

func TestParseEnums(t *testing.T) {
	for _, c := range Categories {
		if p, err := ParseCategory(c.String()); err != nil || p != c {
			t.Errorf("%s: %v", c, err)
		}
	}
	if _, err := ParseCategory("ham"); err == nil {
		t.Error("ham is not a category")
	}
	if m, err := ParseMode(""); err != nil || m != ModeStore {
		t.Error("default mode is store")
	}
	if _, err := ParseMode("spool"); err == nil {
		t.Error("bad mode accepted")
	}
	var it Item
	b := []byte(`{"category":"dmarc","mode":"hold","recipients":[{"addr":"a","state":"released"}]}`)
	if err := jsonUnmarshal(b, &it); err != nil || it.Category != CategoryDMARC || it.Mode != ModeHold || it.Recipients[0].State != StateReleased {
		t.Errorf("json: %+v %v", it, err)
	}
}

// Two daemons sharing the index (and the directory) release one copy at
// the same moment: it is delivered once.
func TestReleaseOnceAcrossInstances(t *testing.T) {
	e := newEnv(t, nil)
	it := e.put(t, CategorySpam, "a@example.org")
	other, err := New(Config{Dir: e.dir, Index: e.ix, Now: e.clk.Now, Releaser: e.rel})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, q := range []*Quarantine{e.q, other} {
		wg.Go(func() { _, errs[i] = q.Release(context.Background(), it.ID, "a@example.org", admin) })
	}
	wg.Wait()
	if len(e.rel.got) != 1 {
		t.Fatalf("delivered %d times", len(e.rel.got))
	}
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("want exactly one success: %v", errs)
	}
}

type countObs struct {
	mu     sync.Mutex
	counts map[string]int
}

func (o *countObs) inc(k string) { o.mu.Lock(); o.counts[k]++; o.mu.Unlock() }
func (o *countObs) Quarantined(c Category, m Mode) {
	o.inc("quarantined:" + c.String() + ":" + m.String())
}
func (o *countObs) Acted(a Action, r Role, c Category) {
	o.inc(a.String() + ":" + r.String() + ":" + c.String())
}
func (o *countObs) DigestSent()                      { o.inc("digest") }
func (o *countObs) LeftToMTA(c Category, why string) { o.inc("left:" + c.String() + ":" + why) }

func TestObserver(t *testing.T) {
	o := &countObs{counts: map[string]int{}}
	e := newEnv(t, func(c *Config) { c.Observer = o })
	ctx := context.Background()
	it := e.put(t, CategorySpam, "a@example.org", "b@example.org")
	e.q.Release(ctx, it.ID, "a@example.org", user("a@example.org"))
	e.q.Delete(ctx, it.ID, "", admin)
	sg, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	e.put(t, CategoryVirus, "c@example.org")
	(&Digest{Q: e.q, Signer: sg, From: "pm@example.org", Send: func(context.Context, string, []string, []byte) error { return nil }}).Run(ctx)
	want := map[string]int{
		"quarantined:spam:store": 1, "quarantined:virus:store": 1,
		"release:user:spam": 1, "delete:admin:spam": 1, "digest": 1,
	}
	for k, v := range want {
		if o.counts[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, o.counts[k], v, o.counts)
		}
	}
}

func TestMaintain(t *testing.T) {
	e := newEnv(t, nil)
	e.put(t, CategorySpam, "a@example.org")
	sg, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	sent := make(chan string, 4)
	d := &Digest{Q: e.q, Signer: sg, From: "pm@example.org", Send: func(ctx context.Context, from string, to []string, msg []byte) error {
		sent <- to[0]
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() { e.q.Maintain(ctx, d, tick); close(done) }()
	if got := <-sent; got != "a@example.org" {
		t.Errorf("digest at start went to %s", got)
	}
	e.clk.Add(15 * 24 * time.Hour)
	tick <- e.clk.Now()
	tick <- e.clk.Now() // the second send waits until the first run is over
	cancel()
	<-done
	st, _ := e.q.Stats(context.Background())
	if st.Items != 0 {
		t.Errorf("the tick did not expire the 15-day-old spam: %+v", st)
	}
}

func TestDivert(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	out, err := e.q.Divert(ctx, Meta{Recipients: []string{"B@example.org"}, Category: CategorySpam},
		[]string{"a@example.org", "b@example.org"}, strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.DeleteRcpts, []string{"b@example.org"}) || out.Discard || out.Item == nil {
		t.Errorf("one of two: %+v", out)
	}
	out, err = e.q.Divert(ctx, Meta{Recipients: []string{"a@example.org", "b@example.org"}, Category: CategorySpam},
		[]string{"a@example.org", "b@example.org"}, strings.NewReader(sample))
	if err != nil || !out.Discard || len(out.DeleteRcpts) != 2 {
		t.Errorf("all: %+v %v", out, err)
	}
	e.ix.Close()
	if _, err := e.q.Divert(ctx, Meta{Recipients: []string{"a@example.org"}, Category: CategorySpam},
		[]string{"a@example.org"}, strings.NewReader(sample)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("failing index: %v", err)
	}
}
