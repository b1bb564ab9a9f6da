package ratelimit

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/store"
)

func load(t *testing.T, toml string) *policy.Config {
	t.Helper()
	cfg, err := policy.Load("test.toml", []byte(toml), []policy.Module{store.Section(), Module(nil)})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newCheck(t *testing.T, toml string) (*Check, *clock, *store.Memory) {
	cfg := load(t, toml)
	ck := &clock{time.Unix(1_800_000_000, 0)}
	st := store.NewMemory()
	st.Now = ck.now
	ls := *cfg.Sections["limit"].(*Limits)
	return &Check{Limits: ls, Store: st, Config: cfg, Now: ck.now}, ck, st
}

func outMsg(auth, from string, rcpts ...string) *message.Message {
	return &message.Message{Client: message.Client{Addr: netip.MustParseAddr("192.0.2.10")}, Auth: auth, MailFrom: from, Rcpts: rcpts}
}

const base = `
local_domains = ["example.org"]
trusted_networks = ["127.0.0.0/8"]
`

func TestConfigErrors(t *testing.T) {
	_, err := policy.Load("x.toml", []byte(base+`
[[limit]]
name = "a b"
key = "colour"
rate = "5/hour"
action = "accept"
`), []policy.Module{store.Section(), Module(nil)})
	if err == nil {
		t.Fatal("bad block accepted")
	}
	for _, want := range []string{"limit.1.name", "limit.1.key", "limit.1.action"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	_, err = policy.Load("x.toml", []byte(base+"[[limit]]\nname = \"a\"\nkey = \"rcpt\"\nrate = \"5/fortnight\"\n"), []policy.Module{store.Section(), Module(nil)})
	if err == nil || !strings.Contains(err.Error(), "fortnight") {
		t.Fatalf("bad rate: %v", err)
	}
}

// TestExactSlidingWindow drives a limit with random bursts on a fake
// clock and checks the promise: in no interval of one period are more
// than N messages admitted, and a message is refused only when N were
// admitted in the period before it.
func TestExactSlidingWindow(t *testing.T) {
	c, ck, _ := newCheck(t, base+`
[[limit]]
name = "user"
key = "sasl_user"
rate = "5/hour"
`)
	rng := rand.New(rand.NewPCG(1, 2))
	var admitted []time.Time
	ctx := context.Background()
	for i := 0; i < 3000; i++ {
		// Bursts of simultaneous messages, and gaps up to 40 minutes.
		if rng.IntN(3) == 0 {
			ck.t = ck.t.Add(time.Duration(rng.IntN(40*60)) * time.Second)
		}
		r, err := c.Check(ctx, outMsg("alice", "alice@example.org", "bob@remote.test"), nil)
		if err != nil {
			t.Fatal(err)
		}
		inWindow := 0
		for _, a := range admitted {
			if a.After(ck.t.Add(-time.Hour)) {
				inWindow++
			}
		}
		switch {
		case r.Status == policy.StatusPass:
			if inWindow >= 5 {
				t.Fatalf("message %d admitted with %d already in the last hour", i, inWindow)
			}
			admitted = append(admitted, ck.t)
		case r.Status == StatusLimited:
			if inWindow < 5 {
				t.Fatalf("message %d refused with only %d in the last hour", i, inWindow)
			}
			if r.Action != policy.ActionTempfail || r.Reasons[0] != "limit-user" {
				t.Fatalf("refusal = %v %v", r.Action, r.Reasons)
			}
		default:
			t.Fatalf("status %q", r.Status)
		}
	}
	// Independently: every interval [a, a+1h) holds at most 5 admissions.
	for i := range admitted {
		n := 0
		for j := i; j < len(admitted) && admitted[j].Sub(admitted[i]) < time.Hour; j++ {
			n++
		}
		if n > 5 {
			t.Fatalf("%d admitted within one hour from %v", n, admitted[i])
		}
	}
	if len(admitted) < 50 {
		t.Fatalf("only %d admitted: the test did not exercise the window", len(admitted))
	}
}

// A fixed window would let 2N through across its boundary; this must not.
func TestNoBoundaryBurst(t *testing.T) {
	c, ck, _ := newCheck(t, base+`
[[limit]]
name = "dom"
key = "sender_domain"
rate = "100/day"
`)
	ck.t = time.Date(2027, 1, 1, 23, 59, 0, 0, time.UTC)
	ctx := context.Background()
	pass := 0
	for i := 0; i < 150; i++ {
		r, _ := c.Check(ctx, outMsg("u", "x@example.org", "y@remote.test"), nil)
		if r.Status == policy.StatusPass {
			pass++
		}
	}
	ck.t = ck.t.Add(2 * time.Minute) // past midnight
	for i := 0; i < 150; i++ {
		r, _ := c.Check(ctx, outMsg("u", "x@example.org", "y@remote.test"), nil)
		if r.Status == policy.StatusPass {
			pass++
		}
	}
	if pass != 100 {
		t.Fatalf("%d passed around midnight, want exactly 100", pass)
	}
	ck.t = ck.t.Add(24 * time.Hour)
	if r, _ := c.Check(ctx, outMsg("u", "x@example.org", "y@remote.test"), nil); r.Status != policy.StatusPass {
		t.Fatal("still limited a day later")
	}
}

func TestKeysAndNormalisation(t *testing.T) {
	c, _, _ := newCheck(t, base+`
[[limit]]
name = "rcpt"
key = "rcpt"
rate = "2/hour"
lowercase = true
tag_separators = "+-"
action = "hold"

[[limit]]
name = "net"
key = "client_ip"
prefix4 = 24
rate = "3/hour"
action = "reject"
directions = ["outbound", "inbound"]
`)
	ctx := context.Background()
	// One recipient written three ways is one key.
	for i, r := range []string{"Bob+a@Remote.TEST", "bob-b@remote.test", "BOB@remote.test"} {
		res, _ := c.Check(ctx, &message.Message{Client: message.Client{Addr: netip.MustParseAddr("198.51.100.1")}, Auth: "u", MailFrom: "u@example.org", Rcpts: []string{r}}, nil)
		want := policy.StatusPass
		if i == 2 {
			want = StatusLimited
		}
		if res.Status != want {
			t.Fatalf("%s: %s, want %s", r, res.Status, want)
		}
		if i == 2 && (res.Action != policy.ActionQuarantine || res.Reasons[0] != "limit-rcpt") {
			t.Fatalf("hold → %v %v", res.Action, res.Reasons)
		}
	}
	// The client network /24 is shared: 198.51.100.1 used 2 (the third was
	// refused by rcpt, and consumed nothing in "net").
	res, _ := c.Check(ctx, &message.Message{Client: message.Client{Addr: netip.MustParseAddr("198.51.100.77")}, Auth: "v", MailFrom: "v@example.org", Rcpts: []string{"carol@remote.test"}}, nil)
	if res.Status != policy.StatusPass {
		t.Fatalf("3rd from the /24: %s %s", res.Status, res.Detail)
	}
	res, _ = c.Check(ctx, &message.Message{Client: message.Client{Addr: netip.MustParseAddr("198.51.100.78")}, Auth: "v", MailFrom: "v@example.org", Rcpts: []string{"dave@remote.test"}}, nil)
	if res.Status != StatusLimited || res.Action != policy.ActionReject || res.Reasons[0] != "limit-net" {
		t.Fatalf("4th from the /24: %s %v %v", res.Status, res.Action, res.Reasons)
	}
	// Another network is not affected; inbound mail from outside counts
	// for "net" only (rcpt is outbound-only by default).
	res, _ = c.Check(ctx, &message.Message{Client: message.Client{Addr: netip.MustParseAddr("203.0.113.5")}, MailFrom: "x@remote.test", Rcpts: []string{"bob@example.org"}}, nil)
	if res.Status != policy.StatusPass {
		t.Fatalf("other network: %s", res.Status)
	}
}

func TestProtectedAndRecipientsCount(t *testing.T) {
	c, _, _ := newCheck(t, base+`
[[limit]]
name = "user"
key = "sasl_user"
rate = "3/hour"
count = "recipients"
`)
	ctx := context.Background()
	r, _ := c.Check(ctx, outMsg("alice", "alice@example.org", "a@r.test", "b@r.test", "postmaster@example.org"), nil)
	if r.Status != policy.StatusPass {
		t.Fatal(r.Status)
	}
	// 2 used; two more recipients would be 4 > 3.
	r, _ = c.Check(ctx, outMsg("alice", "alice@example.org", "c@r.test", "d@r.test"), nil)
	if r.Status != StatusLimited {
		t.Fatalf("4 recipients in 3/hour: %s", r.Status)
	}
	// postmaster@ and abuse@ of our domains are never limited.
	for range 5 {
		r, _ = c.Check(ctx, outMsg("alice", "alice@example.org", "postmaster@example.org", "abuse@example.org"), nil)
		if r.Status != policy.StatusNone {
			t.Fatalf("protected recipients limited: %s", r.Status)
		}
	}
	r, _ = c.Check(ctx, outMsg("alice", "alice@example.org", "c@r.test"), nil)
	if r.Status != policy.StatusPass {
		t.Fatalf("3rd recipient: %s", r.Status)
	}
	// Unauthenticated mail has no sasl_user key.
	r, _ = c.Check(ctx, outMsg("", "alice@example.org", "c@r.test"), nil)
	if r.Status != policy.StatusNone {
		t.Fatalf("no SASL user: %s", r.Status)
	}
}

type failStore struct{ store.Store }

func (failStore) Take(context.Context, []store.Window, time.Time) (int, error) {
	return 0, store.ErrUnavailable
}

func TestStoreDown(t *testing.T) {
	c, _, _ := newCheck(t, base+`
[[limit]]
name = "user"
key = "sasl_user"
rate = "3/hour"
`)
	c.Store = failStore{}
	_, err := c.Check(context.Background(), outMsg("alice", "alice@example.org", "x@r.test"), nil)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	// The step's on_error is tempfail by default.
	cfg := load(t, base+`
[store]
backend = "memory"
[[limit]]
name = "user"
key = "sasl_user"
rate = "3/hour"
`)
	steps, err := Module(store.NewMemory()).Build(cfg.Sections[Name], &policy.Env{Config: cfg})
	if err != nil || len(steps) != 1 || steps[0].OnError != policy.ActionTempfail {
		t.Fatalf("Build = %v %v", steps, err)
	}
}

func TestNormalizeAddr(t *testing.T) {
	for _, c := range []struct {
		in, seps, want string
		lower          bool
	}{
		{"Bob+x@Ex.ORG", "+", "bob@ex.org", true},
		{"Bob+x@Ex.ORG", "", "Bob+x@ex.org", false},
		{"+x@ex.org", "+", "+x@ex.org", false},
		{"a-b+c@ex.org", "+-", "a@ex.org", false},
		{"local", "+", "local", false},
	} {
		if got := NormalizeAddr(c.in, c.lower, c.seps); got != c.want {
			t.Errorf("NormalizeAddr(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := ClientPrefix(netip.MustParseAddr("2001:db8:1:2:3::4"), 24, 48); got != "2001:db8:1::/48" {
		t.Errorf("ClientPrefix = %s", got)
	}
	if got := ClientPrefix(netip.MustParseAddr("::ffff:192.0.2.9"), 24, 48); got != "192.0.2.0/24" {
		t.Errorf("ClientPrefix mapped = %s", got)
	}
}
