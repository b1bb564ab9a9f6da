package wire

import (
	"context"
	"errors"
	"log/slog"
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
