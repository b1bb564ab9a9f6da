package filter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

type fakeQuarantine struct {
	mu    sync.Mutex
	raw   []string
	rcpts [][]string
	out   Kept
	err   error

	storeMax   int64
	oversize   []bool // per Keep: m.Oversize, m.Incomplete
	incomplete []bool
}

func (f *fakeQuarantine) StoreMax() int64 { return f.storeMax }

func (f *fakeQuarantine) Keep(ctx context.Context, cfg *policy.Config, m *message.Message, v *policy.Verdict) (Kept, error) {
	if v.Action != policy.ActionQuarantine {
		return Kept{}, nil
	}
	b, _ := io.ReadAll(m.Raw())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raw = append(f.raw, string(b))
	f.rcpts = append(f.rcpts, m.Rcpts)
	f.oversize = append(f.oversize, m.Oversize)
	f.incomplete = append(f.incomplete, m.Incomplete)
	return f.out, f.err
}

// A quarantine verdict goes to our own quarantine before the MTA is
// answered: the kept recipients are removed and the others get the
// message; none left → discard; the store failing → tempfail; hold mode →
// the MTA's hold queue as before.
func TestOwnQuarantine(t *testing.T) {
	fq := &fakeQuarantine{}
	ts := startServerOpts(t, "", nil, func(o *Options) { o.Quarantine = func() Quarantiner { return fq } })
	c := ts.connect(t, allProtocol)
	invoice := func(qid string) msg {
		m := basicMsg(qid)
		m.rcpts = []string{"bob@example.org", "carol@example.org"}
		m.header = append(m.header, [2]string{"Subject", "Your invoice"})
		return m
	}

	fq.out = Kept{DeleteRcpts: []string{"carol@example.org"}, ID: "0123abcd"}
	o := c.send(t, invoice("Q1"))
	del := modsOf(o, milter.ActionDelRcpt)
	if o.act.Type != milter.ActionAccept || len(del) != 1 || del[0].Rcpt != "<carol@example.org>" || len(modsOf(o, milter.ActionQuarantine)) != 0 {
		t.Errorf("store mode, one of two: %v %v", o.act, o.mods)
	}
	if len(fq.raw) != 1 || !strings.Contains(fq.raw[0], "Subject: Your invoice") || !strings.HasSuffix(fq.raw[0], "Shall we have lunch?\r\n") {
		t.Errorf("kept message %q", fq.raw)
	}

	fq.out = Kept{DeleteRcpts: []string{"bob@example.org", "carol@example.org"}, Discard: true, ID: "4567"}
	if o := c.send(t, invoice("Q2")); o.act.Type != milter.ActionDiscard {
		t.Errorf("store mode, all kept: %v", o.act)
	}

	fq.out, fq.err = Kept{}, errors.New("quarantine: write: no space left on device")
	if o := c.send(t, invoice("Q3")); o.act.Type != milter.ActionRejectWithCode || o.act.SMTPCode/100 != 4 {
		t.Errorf("store failing: %v, want a tempfail", o.act)
	}

	fq.out, fq.err = Kept{Hold: true, ID: "89ab"}, nil
	if o := c.send(t, invoice("Q4")); len(modsOf(o, milter.ActionQuarantine)) != 1 {
		t.Errorf("hold mode: %v", o.mods)
	}

	// not a quarantine verdict: nothing kept
	c.send(t, basicMsg("Q5"))
	if len(fq.raw) != 4 {
		t.Errorf("Keep called %d times, want 4", len(fq.raw))
	}
	var got []string
	for _, l := range ts.logs.messages(t) {
		qid, _ := l["quarantine_id"].(string)
		got = append(got, l["queue_id"].(string)+"="+l["action"].(string)+":"+qid)
	}
	want := "Q1=accept:0123abcd Q2=discard:4567 Q3=tempfail: Q4=quarantine:89ab Q5=accept:"
	if strings.Join(got, " ") != want {
		t.Errorf("summary lines\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

// An oversize message quarantined (max_message_size_action = quarantine):
// under the quarantine's StoreMax the filter keeps it whole, unchecked,
// and Keep gets every byte; past StoreMax it is not kept (SMFIP_SKIP) and
// Keep gets it Incomplete (to leave it to the MTA's hold queue).
func TestOversizeQuarantineKeptWhole(t *testing.T) {
	fq := &fakeQuarantine{storeMax: 400 << 10, out: Kept{DeleteRcpts: []string{"bob@example.org"}, Discard: true, ID: "big"}}
	ts := startServerOpts(t, "max_message_size = \"200KB\"\nmax_message_size_action = \"quarantine\"", nil,
		func(o *Options) { o.Quarantine = func() Quarantiner { return fq } })
	c := ts.connect(t, allProtocol)
	m := basicMsg("BIG1")
	m.body = bytes.Repeat([]byte("z"), 300<<10)
	if o := c.send(t, m); o.act.Type != milter.ActionDiscard {
		t.Errorf("stored oversize: %v, want discard (our copy is whole)", o.act)
	}
	if len(fq.raw) != 1 || !fq.oversize[0] || fq.incomplete[0] || !strings.HasSuffix(fq.raw[0], string(m.body)) {
		t.Fatalf("Keep got oversize %v incomplete %v, %d bytes", fq.oversize, fq.incomplete, len(fq.raw[0]))
	}
	ts.probe.mu.Lock()
	n := len(ts.probe.msgs)
	ts.probe.mu.Unlock()
	if n != 0 {
		t.Errorf("the checks ran %d times on an oversize message", n)
	}
	fq.out = Kept{Hold: true}
	m = basicMsg("BIG2")
	m.body = bytes.Repeat([]byte("z"), 500<<10)
	o := c.send(t, m)
	if len(modsOf(o, milter.ActionQuarantine)) != 1 {
		t.Errorf("past StoreMax: %v %v, want the MTA's hold", o.act, o.mods)
	}
	if len(fq.raw) != 2 || !fq.incomplete[1] || len(fq.raw[1]) > 450<<10 {
		t.Errorf("past StoreMax: incomplete %v, %d bytes kept", fq.incomplete, len(fq.raw[1]))
	}
	// other oversize actions keep nothing past max_message_size
	fq2 := &fakeQuarantine{storeMax: 400 << 10}
	tr := startServerOpts(t, "max_message_size = \"200KB\"", nil, func(o *Options) { o.Quarantine = func() Quarantiner { return fq2 } })
	m.body = bytes.Repeat([]byte("z"), 300<<10)
	if o := tr.connect(t, allProtocol).send(t, m); o.act.Type != milter.ActionRejectWithCode || len(fq2.raw) != 0 {
		t.Errorf("oversize reject: %v, Keep got %d", o.act, len(fq2.raw))
	}
	waitEmpty(t, ts.spool)
}

// listsQuarantine changes the verdict as the recipients' sender lists
// would: a reject becomes an accept (every recipient allows the sender),
// an accept becomes a quarantine of one recipient (it denies the sender).
type listsQuarantine struct{ seen []policy.Action }

func (l *listsQuarantine) StoreMax() int64 { return 0 }
func (l *listsQuarantine) Keep(ctx context.Context, cfg *policy.Config, m *message.Message, v *policy.Verdict) (Kept, error) {
	l.seen = append(l.seen, v.Action)
	switch {
	case v.Action == policy.ActionReject:
		v.Action, v.Reply = policy.ActionAccept, policy.Reply{}
		return Kept{}, nil
	case v.Action == policy.ActionAccept && m.QueueID == "DENY":
		v.Action = policy.ActionQuarantine
		return Kept{DeleteRcpts: []string{"carol@example.org"}, ID: "d1"}, nil
	}
	return Kept{}, nil
}

// Keep sees accept and reject verdicts too (the sender lists may change
// them) and the filter answers what Keep made of the verdict.
func TestKeepMayChangeTheVerdict(t *testing.T) {
	lq := &listsQuarantine{}
	ts := startServerOpts(t, "", nil, func(o *Options) { o.Quarantine = func() Quarantiner { return lq } })
	c := ts.connect(t, allProtocol)
	m := basicMsg("ALLOW")
	m.from = "x@spammer.test" // deny_senders: a reject verdict
	if o := c.send(t, m); o.act.Type != milter.ActionAccept {
		t.Errorf("reject turned into accept by Keep: %v", o.act)
	}
	m = basicMsg("DENY")
	m.rcpts = []string{"bob@example.org", "carol@example.org"}
	o := c.send(t, m)
	del := modsOf(o, milter.ActionDelRcpt)
	if o.act.Type != milter.ActionAccept || len(del) != 1 || del[0].Rcpt != "<carol@example.org>" {
		t.Errorf("accept turned into a quarantine of one recipient: %v %v", o.act, o.mods)
	}
	if !slices.Equal(lq.seen, []policy.Action{policy.ActionReject, policy.ActionAccept}) {
		t.Errorf("Keep saw %v", lq.seen)
	}
}
