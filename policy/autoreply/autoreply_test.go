package autoreply

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/virus"
)

// fakeSpam stands in for the spam check: it reports "spam" when the
// message has "X-Test-Spam: yes", with a score.
type fakeSpam struct{}

func (fakeSpam) Name() string { return "spam" }
func (fakeSpam) Check(_ context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	if m.Header.Get("X-Test-Spam") == "yes" {
		return policy.Result{Status: "spam", Score: 7, Reasons: []string{"test-spam"}}, nil
	}
	return policy.Result{Status: "ham"}, nil
}

type fakeVirus struct{}

func (fakeVirus) Name() string { return "virus" }
func (fakeVirus) Check(_ context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	if m.Header.Get("X-Test-Virus") == "yes" {
		return policy.Result{Status: "infected", Action: policy.ActionDiscard, Mandatory: true, Reasons: []string{"virus-infected"}}, nil
	}
	return policy.Result{Status: "clean"}, nil
}

func testModule(name string, c policy.Check) policy.Module {
	return policy.Module{Name: name, Default: func() any { return &struct{}{} }, Build: func(any, *policy.Env) ([]policy.Step, error) {
		return []policy.Step{{Check: c, StepConfig: policy.DefaultStep()}}, nil
	}}
}

type world struct {
	p     *policy.Pipeline
	ck    *Check
	st    *store.Memory
	now   time.Time
	clock sync.Mutex
}

func (w *world) Now() time.Time {
	w.clock.Lock()
	defer w.clock.Unlock()
	return w.now
}

func (w *world) advance(d time.Duration) {
	w.clock.Lock()
	w.now = w.now.Add(d)
	w.clock.Unlock()
}

const baseTOML = `
local_domains = ["example.org"]
trusted_networks = ["127.0.0.0/8", "10.0.0.0/8"]
[store]
backend = "memory"
[srs]
secret = "0123456789abcdef-test"
`

func newWorld(t *testing.T, extra string) *world {
	t.Helper()
	w := &world{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	// Put the checks built by the modules under test on the fake clock.
	capture := func(m policy.Module) policy.Module {
		b := m.Build
		m.Build = func(sec any, env *policy.Env) ([]policy.Step, error) {
			steps, err := b(sec, env)
			for _, s := range steps {
				switch c := s.Check.(type) {
				case *Check:
					w.ck, c.Now = c, w.Now
					if ms, ok := c.Store.(*store.Memory); ok {
						w.st, ms.Now = ms, w.Now
					}
				case *SRSCheck:
					c.Now = w.Now
				}
			}
			return steps, err
		}
		return m
	}
	cfg, err := policy.Load("test.toml", []byte(baseTOML+extra), sections())
	if err != nil {
		t.Fatal(err)
	}
	st, srs := services(t, cfg)
	mods := []policy.Module{testModule("spam", fakeSpam{}), testModule("virus", fakeVirus{}), store.Section(), capture(SRSModule(srs)), capture(Module(st, srs))}
	p, err := policy.New(cfg, mods, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	w.p = p
	if w.ck == nil || w.st == nil {
		t.Fatal("no autoreply check with a memory store in the pipeline")
	}
	return w
}

type msgOpt func(*message.Message)

func hdr(name, value string) msgOpt {
	return func(m *message.Message) { m.Header = append(m.Header, message.Field{Name: name, Value: " " + value}) }
}

func msg(client, auth, from string, rcpts []string, opts ...msgOpt) *message.Message {
	m := &message.Message{MailFrom: from, Rcpts: rcpts, Auth: auth, Body: message.BytesBody("hello\r\n")}
	if client != "" {
		m.Client.Addr = netip.MustParseAddr(client)
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

func (w *world) run(t *testing.T, m *message.Message) *policy.Verdict {
	t.Helper()
	return w.p.Run(context.Background(), m)
}

func checkStatus(v *policy.Verdict, name string) policy.Status {
	for _, c := range v.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}

func inbound(id string, spam bool, from string) *message.Message {
	opts := []msgOpt{hdr("Message-ID", "<"+id+">"), hdr("From", from), hdr("Subject", "hello")}
	if spam {
		opts = append(opts, hdr("X-Test-Spam", "yes"))
	}
	return msg("198.51.100.7", "", from, []string{"alice@example.org"}, opts...)
}

func vacation(user, to, inReplyTo string) *message.Message {
	// Sieve vacation through sendmail(1): no client address, null sender.
	return msg("", "", "", []string{to},
		hdr("From", user), hdr("To", to), hdr("Subject", "Auto: hello"),
		hdr("Auto-Submitted", "auto-replied (vacation)"), hdr("Precedence", "bulk"),
		hdr("In-Reply-To", "<"+inReplyTo+">"), hdr("References", "<"+inReplyTo+">"),
		hdr("Message-ID", fmt.Sprintf("<vac-%s-%s@example.org>", strings.Split(user, "@")[0], inReplyTo)))
}

func TestRule1ReplyToSpamDiscarded(t *testing.T) {
	w := newWorld(t, "")
	v := w.run(t, inbound("spam1@remote.test", true, "bob@remote.test"))
	if v.Action != policy.ActionAccept || !hasField(v.Prepend, "X-Spam-Flag") {
		t.Fatalf("inbound spam: %v %v (want tagged and delivered)", v.Action, v.Reasons)
	}
	v = w.run(t, vacation("alice@example.org", "bob@remote.test", "spam1@remote.test"))
	if v.Action != policy.ActionDiscard || !hasReason(v, "autoreply-spam") {
		t.Fatalf("vacation to spam: %v %v", v.Action, v.Reasons)
	}
	// A reply to a virus: discarded too.
	vm := inbound("virus1@remote.test", false, "carol@remote.test")
	vm.Header = append(vm.Header, message.Field{Name: "X-Test-Virus", Value: " yes"})
	w.run(t, vm)
	v = w.run(t, vacation("alice@example.org", "carol@remote.test", "virus1@remote.test"))
	if v.Action != policy.ActionDiscard || !hasReason(v, "autoreply-virus") {
		t.Fatalf("vacation to virus: %v %v", v.Action, v.Reasons)
	}
	// A forward (Message-ID remembered) of spam: discarded.
	fw := inbound("spam1@remote.test", true, "bob@remote.test")
	fw.Client, fw.Auth, fw.Rcpts = message.Client{}, "", []string{"alice@elsewhere.test"}
	fw.MailFrom = "alice@example.org"
	v = w.run(t, fw)
	if v.Action != policy.ActionDiscard || !hasReason(v, "autoreply-spam") || checkStatus(v, "autoreply") != StatusBlocked {
		t.Fatalf("forward of spam: %v %v", v.Action, v.Reasons)
	}
}

func TestRule3NoticeOncePerPeriod(t *testing.T) {
	w := newWorld(t, "")
	w.run(t, inbound("ham1@remote.test", false, "bob@remote.test"))
	v := w.run(t, vacation("alice@example.org", "bob@remote.test", "ham1@remote.test"))
	if v.Action != policy.ActionAccept || checkStatus(v, "autoreply") != StatusReply {
		t.Fatalf("first notice: %v %v %s", v.Action, v.Reasons, checkStatus(v, "autoreply"))
	}
	w.run(t, inbound("ham2@remote.test", false, "bob@remote.test"))
	w.advance(6 * 24 * time.Hour)
	v = w.run(t, vacation("Alice@Example.org", "Bob@remote.test", "ham2@remote.test"))
	if v.Action != policy.ActionDiscard || !hasReason(v, "autoreply-limited") {
		t.Fatalf("second notice within 7 days: %v %v", v.Action, v.Reasons)
	}
	// Another local user may notify the same address.
	v = w.run(t, vacation("dave@example.org", "bob@remote.test", "ham2@remote.test"))
	if v.Action != policy.ActionAccept {
		t.Fatalf("other user: %v %v", v.Action, v.Reasons)
	}
	w.advance(24*time.Hour + time.Second)
	v = w.run(t, vacation("alice@example.org", "bob@remote.test", "ham2@remote.test"))
	if v.Action != policy.ActionAccept {
		t.Fatalf("after 7 days: %v %v", v.Action, v.Reasons)
	}
}

func TestRule3RatesExactUnderConcurrency(t *testing.T) {
	w := newWorld(t, `
[autoreply]
per_address = "7/hour"
per_domain = "50/hour"
`)
	var pass atomic.Int32
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := w.run(t, vacation(fmt.Sprintf("user%d@example.org", i), "target@remote.test", fmt.Sprintf("m%d@remote.test", i)))
			switch {
			case v.Action == policy.ActionAccept:
				pass.Add(1)
			case v.Action != policy.ActionDiscard || !hasReason(v, "autoreply-limited"):
				t.Errorf("reply %d: %v %v", i, v.Action, v.Reasons)
			}
		}()
	}
	wg.Wait()
	if pass.Load() != 7 {
		t.Fatalf("%d of 200 concurrent auto-replies passed, want exactly 7", pass.Load())
	}
	// The domain limit: 50 per hour over all addresses of remote.test
	// (7 already used by target@).
	n := 0
	for i := range 100 {
		v := w.run(t, vacation("x@example.org", fmt.Sprintf("r%d@remote.test", i), "y@remote.test"))
		if v.Action == policy.ActionAccept {
			n++
		}
	}
	if n != 43 {
		t.Fatalf("%d passed to remote.test, want 43 (50/hour minus 7)", n)
	}
	w.advance(time.Hour)
	if v := w.run(t, vacation("new@example.org", "target@remote.test", "z@remote.test")); v.Action != policy.ActionAccept {
		t.Fatalf("an hour later: %v %v", v.Action, v.Reasons)
	}
}

func TestRule2Namespace(t *testing.T) {
	w := newWorld(t, "")
	// An auto-reply with a foreign From.
	m := vacation("mallory@remote.test", "bob@remote.test", "x@remote.test")
	if v := w.run(t, m); v.Action != policy.ActionDiscard || !hasReason(v, "autoreply-foreign-from") {
		t.Fatalf("foreign From: %v %v", v.Action, v.Reasons)
	}
	// An auto-reply with a foreign envelope sender.
	m = vacation("alice@example.org", "bob@remote.test", "x@remote.test")
	m.MailFrom = "someone@remote.test"
	if v := w.run(t, m); v.Action != policy.ActionDiscard || !hasReason(v, "autoreply-foreign-sender") {
		t.Fatalf("foreign envelope sender: %v %v", v.Action, v.Reasons)
	}
	// A forward with a foreign envelope sender is rewritten with SRS.
	w.run(t, inbound("ham9@remote.test", false, "bob@remote.test"))
	fw := msg("", "", "bob@remote.test", []string{"alice@elsewhere.test"},
		hdr("Message-ID", "<ham9@remote.test>"), hdr("From", "bob@remote.test"), hdr("Subject", "hello"))
	v := w.run(t, fw)
	if v.Action != policy.ActionAccept || !strings.HasPrefix(v.ChangeFrom, "SRS0=") || !strings.HasSuffix(v.ChangeFrom, "=remote.test=bob@example.org") {
		t.Fatalf("forward: %v %v change_from=%q", v.Action, v.Reasons, v.ChangeFrom)
	}
	// The bounce to the SRS address comes back to bob.
	b := msg("198.51.100.9", "", "", []string{v.ChangeFrom}, hdr("From", "MAILER-DAEMON@elsewhere.test"), hdr("Subject", "Undelivered Mail"))
	if a, _, _ := w.p.Rcpt(context.Background(), &message.Envelope{Client: b.Client}, v.ChangeFrom); a != policy.ActionAccept {
		t.Fatalf("RCPT of a valid SRS address: %v", a)
	}
	bv := w.run(t, b)
	if bv.Action != policy.ActionAccept || fmt.Sprint(bv.DeleteRcpts) != "["+v.ChangeFrom+"]" || fmt.Sprint(bv.AddRcpts) != "[bob@remote.test]" {
		t.Fatalf("bounce: %v del=%v add=%v", bv.Action, bv.DeleteRcpts, bv.AddRcpts)
	}
	forged := strings.Replace(v.ChangeFrom, "=remote.test=bob@", "=remote.test=eve@", 1)
	if a, r, _ := w.p.Rcpt(context.Background(), &message.Envelope{Client: b.Client}, forged); a != policy.ActionReject || r.Code != 550 {
		t.Fatalf("RCPT of a forged SRS address: %v %v", a, r)
	}
	// A forward whose envelope sender is ours is left alone.
	fw.MailFrom = "alice@example.org"
	if v := w.run(t, fw); v.Action != policy.ActionAccept || v.ChangeFrom != "" || checkStatus(v, "autoreply") != StatusForward {
		t.Fatalf("local-sender forward: %v %q %s", v.Action, v.ChangeFrom, checkStatus(v, "autoreply"))
	}
}

func TestRule2ForwardRejectWithoutSRS(t *testing.T) {
	cfg, err := policy.Load("t.toml", []byte("local_domains = [\"example.org\"]\n[store]\nbackend = \"memory\"\n"), sections())
	if err != nil {
		t.Fatal(err)
	}
	st, srs := services(t, cfg)
	p, err := policy.New(cfg, []policy.Module{store.Section(), SRSModule(srs), Module(st, srs)}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fw := msg("", "", "bob@remote.test", []string{"alice@elsewhere.test"}, hdr("Resent-From", "alice@example.org"), hdr("From", "bob@remote.test"))
	if v := p.Run(context.Background(), fw); v.Action != policy.ActionReject || !hasReason(v, "forward-foreign-sender") {
		t.Fatalf("forward without SRS: %v %v", v.Action, v.Reasons)
	}
	// foreign_sender = "srs" without a secret is a configuration error.
	cfg, _ = policy.Load("t.toml", []byte("local_domains = [\"example.org\"]\n[store]\nbackend = \"memory\"\n[autoreply]\nforeign_sender = \"srs\"\n"), sections())
	st, srs = services(t, cfg)
	if _, err := policy.New(cfg, []policy.Module{store.Section(), SRSModule(srs), Module(st, srs)}, nil, nil, nil); err == nil {
		t.Fatal("srs without a secret accepted")
	}
}

func TestRule5ForwardingAddresses(t *testing.T) {
	dir := t.TempDir()
	aliases := filepath.Join(dir, "aliases")
	os.WriteFile(aliases, []byte("# comment\npostmaster: root\nroot: admin@gmail.test\nlocalonly: alice\ncarol: carol@gmail.test,\n  alice\n"), 0o644)
	w := newWorld(t, fmt.Sprintf(`
[autoreply]
forwarding_addresses = ["dave@example.org"]
alias_maps = [%q]
`, aliases))
	spam := func(rcpts ...string) *message.Message {
		m := inbound(fmt.Sprint(time.Now().UnixNano(), "@remote.test"), true, "bob@remote.test")
		m.Rcpts = rcpts
		return m
	}
	v := w.run(t, spam("dave@example.org"))
	if v.Action != policy.ActionQuarantine || !hasReason(v, "forward-spam") {
		t.Fatalf("spam to a listed forwarder: %v %v", v.Action, v.Reasons)
	}
	v = w.run(t, spam("Carol@example.org"))
	if v.Action != policy.ActionQuarantine {
		t.Fatalf("spam to an aliased forwarder: %v %v", v.Action, v.Reasons)
	}
	v = w.run(t, spam("localonly@example.org"))
	if v.Action != policy.ActionAccept || hasReason(v, "forward-spam") {
		t.Fatalf("spam to a local alias: %v %v", v.Action, v.Reasons)
	}
	// Rule 6: postmaster forwards off-site (via root), and is never blocked.
	v = w.run(t, spam("postmaster@example.org"))
	if v.Action != policy.ActionAccept || hasReason(v, "forward-spam") {
		t.Fatalf("spam to postmaster: %v %v", v.Action, v.Reasons)
	}
	// Ham to a forwarder passes.
	h := inbound("ham5@remote.test", false, "bob@remote.test")
	h.Rcpts = []string{"dave@example.org"}
	if v := w.run(t, h); v.Action != policy.ActionAccept {
		t.Fatalf("ham to a forwarder: %v %v", v.Action, v.Reasons)
	}

	// discard: only the forwarded copies are dropped when others remain.
	w2 := newWorld(t, `
[autoreply]
forwarding_addresses = ["dave@example.org"]
forward_spam_action = "discard"
`)
	v = w2.run(t, spam("dave@example.org", "alice@example.org"))
	if v.Action != policy.ActionAccept || fmt.Sprint(v.DeleteRcpts) != "[dave@example.org]" {
		t.Fatalf("mixed recipients: %v del=%v", v.Action, v.DeleteRcpts)
	}
	v = w2.run(t, spam("dave@example.org"))
	if v.Action != policy.ActionDiscard {
		t.Fatalf("forwarder only: %v", v.Action)
	}
}

func TestRule6Protected(t *testing.T) {
	w := newWorld(t, "")
	w.run(t, inbound("spam7@remote.test", true, "postmaster@example.org"))
	// An internal auto-reply to postmaster about a spam: not blocked.
	v := w.run(t, vacation("alice@example.org", "postmaster@example.org", "spam7@remote.test"))
	if v.Action != policy.ActionAccept {
		t.Fatalf("auto-reply to postmaster: %v %v", v.Action, v.Reasons)
	}
}

type downStore struct{ store.Store }

func (downStore) MGet(context.Context, []string) ([][]byte, error) { return nil, store.ErrUnavailable }

func TestStoreDownIsOnError(t *testing.T) {
	w := newWorld(t, "")
	w.ck.Store = downStore{}
	v := w.run(t, vacation("alice@example.org", "bob@remote.test", "x@remote.test"))
	if v.Action != policy.ActionTempfail || !hasReason(v, "autoreply-error") {
		t.Fatalf("store down: %v %v", v.Action, v.Reasons)
	}
	// Mail by people, without a Message-ID to look up, is not affected.
	m := msg("", "alice", "alice@example.org", []string{"bob@remote.test"}, hdr("From", "alice@example.org"))
	if v := w.run(t, m); v.Action != policy.ActionAccept {
		t.Fatalf("plain mail with the store down: %v %v", v.Action, v.Reasons)
	}
	_, err := w.ck.Check(context.Background(), vacation("alice@example.org", "bob@remote.test", "x@remote.test"), nil)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

// sections is the schema: our sections and the store's.
func sections() []policy.Module {
	return []policy.Module{store.Section(), SRSModule(nil), Module(nil, nil)}
}

// services builds what the daemon would hand the modules: the store of
// [store] and the SRS rewriter of [srs].
func services(t *testing.T, cfg *policy.Config) (store.Store, *SRS) {
	t.Helper()
	st, err := store.Open(store.ConfigOf(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srs, err := NewSRS(SRSConfigOf(cfg), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st, srs
}

func TestConfigValidate(t *testing.T) {
	mods := sections()
	_, err := policy.Load("t.toml", []byte("[autoreply]\nspam_action = \"explode\"\nflood_action = \"accept\"\nforeign_sender = \"x\"\n[srs]\nsecret = \"short\"\n"), mods)
	for _, k := range []string{"autoreply.spam_action", "autoreply.flood_action", "autoreply.foreign_sender", "srs.secret"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error %v does not name %s", err, k)
		}
	}
}

func hasReason(v *policy.Verdict, r string) bool { return contains(v.Reasons, r) }

func hasField(fs []message.Field, name string) bool {
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// vacation(1) names no message: the last class of the address it answers
// decides.
func TestRule1ReplyWithoutReferences(t *testing.T) {
	w := newWorld(t, "")
	w.run(t, inbound("spam8@remote.test", true, "eve@remote.test"))
	w.run(t, inbound("ham8@remote.test", false, "frank@remote.test"))
	old := func(to string) *message.Message {
		return msg("", "", "alice@example.org", []string{to}, hdr("From", "alice@example.org"), hdr("To", to),
			hdr("Subject", "away from my mail"), hdr("Precedence", "junk"))
	}
	if v := w.run(t, old("Eve@remote.test")); v.Action != policy.ActionDiscard || !hasReason(v, "autoreply-spam") {
		t.Fatalf("vacation(1) to a spammer: %v %v", v.Action, v.Reasons)
	}
	if v := w.run(t, old("frank@remote.test")); v.Action != policy.ActionAccept {
		t.Fatalf("vacation(1) to a ham sender: %v %v", v.Action, v.Reasons)
	}
}

func TestVerdictClass(t *testing.T) {
	report := func(name string, st policy.Status) policy.CheckReport {
		return policy.CheckReport{Name: name, Status: st, Result: policy.Result{Status: st}}
	}
	for _, c := range []struct {
		name string
		v    policy.Verdict
		want Class
	}{
		{"clean", policy.Verdict{WouldBe: policy.ActionAccept}, ClassClean},
		{"virus", policy.Verdict{Checks: []policy.CheckReport{report(virus.Name, virus.StatusInfected)}}, ClassVirus},
		{"spam-status", policy.Verdict{Checks: []policy.CheckReport{report(spam.Name, spam.StatusSpam)}}, ClassSpam},
		{"unsure-status", policy.Verdict{Checks: []policy.CheckReport{report(spam.Name, spam.StatusUnsure)}}, ClassClean},
		// The verdict's class, not the text of a header it renders.
		{"flagged", policy.Verdict{Flagged: true}, ClassSpam},
		{"flag-header text only", policy.Verdict{Prepend: []message.Field{{Name: "X-Spam-Flag", Value: "YES"}}}, ClassClean},
		{"held-for-score", policy.Verdict{WouldBe: policy.ActionQuarantine, Reasons: []string{"spam-score"}}, ClassSpam},
		{"held-for-rule", policy.Verdict{WouldBe: policy.ActionQuarantine, Reasons: []string{"rule-x"}}, ClassClean},
	} {
		if got := verdictClass(&c.v); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestObserveOnlyFinalInbound(t *testing.T) {
	w := newWorld(t, "")
	ctx := context.Background()
	in := inbound("obs1@remote.test", true, "bob@remote.test")
	if err := w.ck.Observe(ctx, in, &policy.Verdict{WouldBe: policy.ActionTempfail}); err != nil || w.st.Len() != 0 {
		t.Fatalf("a deferred message was remembered (%d keys, %v)", w.st.Len(), err)
	}
	out := msg("", "alice", "alice@example.org", []string{"bob@remote.test"}, hdr("Message-ID", "<obs2@example.org>"))
	if err := w.ck.Observe(ctx, out, &policy.Verdict{}); err != nil || w.st.Len() != 0 {
		t.Fatalf("an outbound message was remembered (%d keys, %v)", w.st.Len(), err)
	}
	if err := w.ck.Observe(ctx, in, &policy.Verdict{Checks: []policy.CheckReport{{Name: spam.Name, Status: spam.StatusSpam, Result: policy.Result{Status: spam.StatusSpam}}}}); err != nil || w.st.Len() != 2 {
		t.Fatalf("inbound spam: %d keys, %v (want message and sender)", w.st.Len(), err)
	}
	v, ok, _ := w.st.Get(ctx, MemoryKey("OBS1@remote.test"))
	if !ok || !strings.Contains(string(v), `"c":"spam"`) || !strings.Contains(string(v), "bob@remote.test") {
		t.Fatalf("memory = %s", v)
	}
	// It expires after memory_ttl.
	w.advance(7*24*time.Hour + time.Second)
	if _, ok, _ := w.st.Get(ctx, MemoryKey("obs1@remote.test")); ok {
		t.Fatal("memory outlived memory_ttl")
	}
}
