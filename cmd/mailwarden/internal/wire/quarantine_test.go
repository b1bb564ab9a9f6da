package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/virus"
)

type enospc struct{ *os.File }

func (enospc) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

func newQuarantine(t *testing.T, full bool, onError policy.Action) *Quarantine {
	t.Helper()
	dir := t.TempDir()
	ix, err := quarantine.OpenBolt(filepath.Join(dir, "i.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	cfg := quarantine.Config{Dir: dir, Index: ix}
	if full {
		cfg.CreateTemp = func(dir, pattern string) (quarantine.File, error) {
			f, err := os.CreateTemp(dir, pattern)
			return enospc{f}, err
		}
	}
	q, err := quarantine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := quarantine.DefaultSettings()
	st.OnError = onError
	return &Quarantine{Service: &quarantine.Service{Settings: st, Q: q}, Logger: slog.New(slog.DiscardHandler)}
}

func TestKeep(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.Lists.AllowRecipients = []string{"boss@example.org"}
	m := &message.Message{QueueID: "ABC123", MailFrom: "s@spam.example", Rcpts: []string{"a@example.org", "boss@example.org"},
		Header: message.Header{{Name: "Subject", Value: " offer"}}, Body: message.BytesBody(make([]byte, 1<<20))}
	v := &policy.Verdict{Action: policy.ActionQuarantine, Score: 15, Reasons: []string{policy.ReasonSpamScore}}
	ctx := context.Background()

	k, err := newQuarantine(t, false, policy.ActionTempfail).Keep(ctx, cfg, m, v)
	if err != nil || k.Hold || k.Discard || !slices.Equal(k.DeleteRcpts, []string{"a@example.org"}) || k.ID == "" {
		t.Errorf("one of two held: %+v %v", k, err)
	}
	_, err = newQuarantine(t, true, policy.ActionTempfail).Keep(ctx, cfg, m, v)
	if !errors.Is(err, quarantine.ErrUnavailable) {
		t.Errorf("full disk, on_error tempfail: %v, want an error (the filter tempfails)", err)
	}
	k, err = newQuarantine(t, true, policy.ActionAccept).Keep(ctx, cfg, m, v)
	if err != nil || !k.Hold {
		t.Errorf("full disk, on_error accept: %+v %v, want the MTA's hold", k, err)
	}
	cfg.Lists.AllowRecipients = []string{"*@example.org"}
	k, err = newQuarantine(t, false, policy.ActionTempfail).Keep(ctx, cfg, m, v)
	if err != nil || len(k.DeleteRcpts) != 0 || k.Discard || k.Hold {
		t.Errorf("everyone spared: %+v %v", k, err)
	}
}

func TestCategoryOf(t *testing.T) {
	for _, c := range []struct {
		check string
		act   policy.Action
		want  quarantine.Category
	}{
		{virus.Name, policy.ActionQuarantine, quarantine.CategoryVirus},
		{auth.DMARC, policy.ActionQuarantine, quarantine.CategoryDMARC},
		{spam.Name, policy.ActionQuarantine, quarantine.CategorySpam},
		{"rules", policy.ActionQuarantine, quarantine.CategoryPolicy},
	} {
		v := &policy.Verdict{Checks: []policy.CheckReport{{Name: "lists"}, {Name: c.check, Result: policy.Result{Action: c.act}}}}
		if got := CategoryOf(v); got != c.want {
			t.Errorf("%s: %s, want %s", c.check, got, c.want)
		}
	}
	if got := CategoryOf(&policy.Verdict{Reasons: []string{policy.ReasonSpamScore}}); got != quarantine.CategorySpam {
		t.Errorf("score: %s", got)
	}
}

// The page's "learn as spam" reaches the Bayes token store.
func TestLearner(t *testing.T) {
	cfg, err := policy.Load("t.toml", []byte("[spam.bayes]\nenabled = true\n"), Sections())
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	learn := learner(cfg, &Services{Store: st})
	if learn == nil {
		t.Fatal("no learner with Bayes on")
	}
	raw := "Message-ID: <learn-1@spam.example>\r\nSubject: cheap pills\r\n\r\nbuy cheap pills now\r\n"
	if err := learn(context.Background(), strings.NewReader(raw), true); err != nil {
		t.Fatal(err)
	}
	sc := *spam.ConfigOf(cfg)
	chk, err := spam.New(&sc, cfg, spam.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h, body, _ := message.ReadMessage(strings.NewReader(raw), 100)
	cl, err := chk.TokenStore().Seen(context.Background(), spam.MessageID(&message.Message{Header: h, Body: message.BytesBody(body)}))
	if err != nil || cl != bayes.ClassSpam {
		t.Errorf("learned as %q (%v), want spam", cl, err)
	}
	off, _ := policy.Load("t.toml", []byte("[spam.bayes]\nenabled = false\n"), Sections())
	if learner(off, &Services{Store: st}) != nil {
		t.Error("a learner without Bayes")
	}
}

// A reload that changes [quarantine] applies it: the bbolt index (locked
// by this process) and the page's listener are kept, the service and the
// page behind the listener are new. A new index location opens a new
// index and retires the old one.
func TestReloadQuarantine(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "q.key")
	os.WriteFile(key, []byte("reload-secret-0123456789abcdef"), 0o600)
	addr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	conf := func(qdir, extra string) *policy.Config {
		return load(t, fmt.Sprintf("[store]\nbackend = \"memory\"\n[quarantine]\nenabled = true\ndir = %q\nsecret_file = %q\nopen_timeout = \"200ms\"\n%s\n[quarantine.web]\nlisten = %q\n",
			qdir, key, extra, addr))
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s1, _, err := BuildServices(conf(filepath.Join(dir, "q"), ""), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s1.Start(ctx)
	it, err := s1.Quarantine.Q.Put(ctx, quarantine.Meta{MailFrom: "s@spam.example", Recipients: []string{"a@example.org"}, Category: quarantine.CategorySpam},
		strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/login"); code != 200 {
		t.Fatalf("page before the reload: %d", code)
	}

	// retention, sender lists and deny_action change: applied, nothing reopened
	s2, retired, err := BuildServices(conf(filepath.Join(dir, "q"), "sender_lists = false\ndeny_action = \"reject\"\nretention = { spam = \"2d\" }"), s1, Options{})
	if err != nil {
		t.Fatalf("reload with a changed [quarantine]: %v", err)
	}
	if s2.Quarantine == s1.Quarantine || s2.quarantineIndex != s1.quarantineIndex || s2.page != s1.page || len(retired) != 1 {
		t.Fatalf("service new %v, index kept %v, page kept %v, retired %d (want 1)",
			s2.Quarantine != s1.Quarantine, s2.quarantineIndex == s1.quarantineIndex, s2.page == s1.page, len(retired))
	}
	for _, c := range retired {
		c.Close()
	}
	s2.Start(ctx)
	if got := s2.Quarantine.Q.Retention(quarantine.CategorySpam); got != 48*time.Hour {
		t.Errorf("retention after the reload: %v", got)
	}
	if s2.Quarantine.Settings.SenderLists || s2.Quarantine.Settings.DenyAction != policy.ActionReject {
		t.Errorf("settings after the reload: %+v", s2.Quarantine.Settings)
	}
	if _, err := s2.Quarantine.Q.Get(ctx, it.ID, quarantine.Actor{Role: quarantine.RoleAdmin}); err != nil {
		t.Errorf("item after the reload: %v", err)
	}
	// the listener stayed; the page behind it is the new one (no sender lists)
	if code, _ := get("/lists"); code != 404 {
		t.Errorf("GET /lists after sender_lists = false: %d, want 404 (the old page still serves)", code)
	}

	// a new directory: a new index, the old one retired with the service
	s3, retired, err := BuildServices(conf(filepath.Join(dir, "q2"), ""), s2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if s3.quarantineIndex == s2.quarantineIndex || s3.page != s2.page || len(retired) != 2 {
		t.Fatalf("new index %v, page kept %v, retired %d (want 2)", s3.quarantineIndex != s2.quarantineIndex, s3.page == s2.page, len(retired))
	}
	for _, c := range retired {
		c.Close()
	}
	s3.Start(ctx)
	if _, err := s3.Quarantine.Q.Get(ctx, it.ID, quarantine.Actor{Role: quarantine.RoleAdmin}); !errors.Is(err, quarantine.ErrNotFound) {
		t.Errorf("an item of the old index in the new one: %v", err)
	}
	if code, body := get("/lists"); code != 200 || !strings.Contains(body, "Admin password") {
		t.Errorf("GET /lists with sender lists back on: %d, want the sign-in page", code)
	}
}

type leftObs struct {
	quarantine.Observer
	left []string
}

func (o *leftObs) Quarantined(quarantine.Category, quarantine.Mode)              {}
func (o *leftObs) Acted(quarantine.Action, quarantine.Role, quarantine.Category) {}
func (o *leftObs) LeftToMTA(c quarantine.Category, why string) {
	o.left = append(o.left, c.String()+":"+why)
}

// An oversize message to quarantine in store mode: stored when kept whole
// and under max_store_size; else left to the MTA's hold queue, counted
// (too-big) and logged; hold mode records it as any other.
func TestKeepTooBig(t *testing.T) {
	cfg := policy.DefaultConfig()
	v := func() *policy.Verdict {
		return &policy.Verdict{Action: policy.ActionQuarantine, Reasons: []string{policy.ReasonOversize}}
	}
	msg := func(n int, incomplete bool) *message.Message {
		return &message.Message{QueueID: "BIG1", MailFrom: "s@x.example", Rcpts: []string{"a@example.org"}, Oversize: true, Incomplete: incomplete,
			Header: message.Header{{Name: "Subject", Value: " big"}}, Body: message.BytesBody(make([]byte, n)), Size: int64(n + 20)}
	}
	ctx := context.Background()
	dir := t.TempDir()
	ix, err := quarantine.OpenBolt(filepath.Join(dir, "i.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	obs := &leftObs{}
	q, _ := quarantine.New(quarantine.Config{Dir: dir, Index: ix, Observer: obs})
	st := quarantine.DefaultSettings()
	st.MaxStoreSize = 1 << 20
	var logs strings.Builder
	w := &Quarantine{Service: &quarantine.Service{Settings: st, Q: q}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	if w.StoreMax() != 1<<20 {
		t.Errorf("StoreMax %d", w.StoreMax())
	}

	k, err := w.Keep(ctx, cfg, msg(512<<10, false), v())
	if err != nil || k.Hold || !k.Discard || k.ID == "" {
		t.Fatalf("kept whole, under max_store_size: %+v %v, want it stored", k, err)
	}
	it, rc, err := q.Open(ctx, k.ID, quarantine.Actor{Role: quarantine.RoleAdmin})
	if err != nil || it.Size != int64(512<<10+len("Subject: big\r\n\r\n")) {
		t.Fatalf("stored item: %+v %v", it, err)
	}
	rc.Close()
	for _, m := range []*message.Message{msg(2<<20, false), msg(100, true)} {
		k, err := w.Keep(ctx, cfg, m, v())
		if err != nil || !k.Hold || k.ID != "" {
			t.Errorf("too big (size %d, incomplete %v): %+v %v, want the MTA's hold", m.Size, m.Incomplete, k, err)
		}
	}
	if !slices.Equal(obs.left, []string{"policy:too-big", "policy:too-big"}) {
		t.Errorf("counted %v", obs.left)
	}
	if n := strings.Count(logs.String(), "message too big to store"); n != 2 {
		t.Errorf("%d log lines:\n%s", n, logs.String())
	}
	// not a quarantine verdict: nothing to do, nothing counted
	if k, err := w.Keep(ctx, cfg, msg(100, true), &policy.Verdict{Action: policy.ActionAccept}); err != nil || k.Hold {
		t.Errorf("accept: %+v %v", k, err)
	}
	// hold mode: no store limit, recorded as any held message
	st.Mode = quarantine.ModeHold
	if w.StoreMax() != 0 {
		t.Error("StoreMax in hold mode")
	}
	if k, err := w.Keep(ctx, cfg, msg(100, true), v()); err != nil || !k.Hold || k.ID == "" {
		t.Errorf("hold mode: %+v %v", k, err)
	}
}

// Keep reads the recipients' sender lists: an allowed sender's spam is
// delivered to that recipient, the other's copy stored; a denied sender's
// clean mail is stored for the denying recipient only, as a policy item.
func TestKeepSenderLists(t *testing.T) {
	cfg := policy.DefaultConfig()
	w := newQuarantine(t, false, policy.ActionTempfail)
	ctx := context.Background()
	sys := quarantine.Actor{Name: "t", Role: quarantine.RoleSystem}
	if err := w.Q.ListSender(ctx, sys, "a@example.org", "friend@shop.example", quarantine.ListAllow, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Q.ListSender(ctx, sys, "b@example.org", "pest@shop.example", quarantine.ListDeny, nil); err != nil {
		t.Fatal(err)
	}
	m := func(from string) *message.Message {
		return &message.Message{QueueID: "L1", MailFrom: from, Rcpts: []string{"a@example.org", "b@example.org"},
			Header: message.Header{{Name: "Subject", Value: " hi"}}, Body: message.BytesBody([]byte("body\r\n"))}
	}
	spam := &policy.Verdict{Action: policy.ActionQuarantine, Score: 15, Reasons: []string{policy.ReasonSpamScore}}
	k, err := w.Keep(ctx, cfg, m("friend@shop.example"), spam)
	if err != nil || !slices.Equal(k.DeleteRcpts, []string{"b@example.org"}) || k.Discard || !slices.Contains(spam.Reasons, quarantine.ReasonSenderAllowed) {
		t.Errorf("allowed by a: %+v %v %v", k, err, spam.Reasons)
	}
	ham := &policy.Verdict{Action: policy.ActionAccept}
	k, err = w.Keep(ctx, cfg, m("pest@shop.example"), ham)
	if err != nil || ham.Action != policy.ActionQuarantine || !slices.Equal(k.DeleteRcpts, []string{"b@example.org"}) || k.ID == "" {
		t.Fatalf("denied by b: %+v %v %v", k, err, ham.Action)
	}
	if it, _ := w.Q.Get(ctx, k.ID, sys); it.Category != quarantine.CategoryPolicy {
		t.Errorf("denied item category %v, want policy", it.Category)
	}
	w.Settings.SenderLists = false
	ham = &policy.Verdict{Action: policy.ActionAccept}
	if k, _ := w.Keep(ctx, cfg, m("pest@shop.example"), ham); ham.Action != policy.ActionAccept || k.ID != "" {
		t.Errorf("sender_lists = false: %v %+v", ham.Action, k)
	}
}
