package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/corpus"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/explain"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/wire"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
)

// learner is the spam check `learn` uses for tokens and the token store,
// built on the daemon's store for the config in force.
type learner struct {
	mu  sync.Mutex
	cfg *policy.Config
	chk *spam.Check
}

// services is the set in force.
func (d *Server) services() *wire.Services {
	d.svcMu.Lock()
	defer d.svcMu.Unlock()
	return d.svc
}

// Check implements control.Daemon: the pipeline of the config in force,
// on the services in force with the store read-only, so that a check
// sees what the next message would see and changes nothing (no rate
// limit taken, no auto-reply remembered).
func (d *Server) Check(ctx context.Context, req control.CheckRequest, raw []byte) (string, int, error) {
	cfg := d.cfg()
	m, err := explain.Message(raw, cfg, req.Envelope, time.Now())
	if err != nil {
		return "", 0, fmt.Errorf("check: %w", err)
	}
	p, err := policy.New(cfg, wire.Modules(d.services().DryRun()), slog.New(slog.DiscardHandler), d.modes, nil)
	if err != nil {
		return "", 0, fmt.Errorf("check: %w", err)
	}
	defer p.Close()
	v := p.Run(ctx, m)
	src := explain.Source{Daemon: true, PID: os.Getpid(), Config: d.cfgPath, Setup: p.Describe()}
	var b strings.Builder
	if req.JSON {
		explain.JSON(&b, m, v, src, req.Explain)
	} else {
		explain.Text(&b, m, v, cfg, src, req.Explain)
	}
	return b.String(), explain.ExitCode(v.Action), nil
}

// Learn implements control.Daemon: raw is learned into the Bayes tokens
// of the daemon's own store (bbolt allows one process: this one).
func (d *Server) Learn(ctx context.Context, req control.LearnRequest, raw []byte) (*control.LearnResult, error) {
	cfg := d.cfg()
	sec := spam.ConfigOf(cfg)
	if !sec.Enabled || !sec.Bayes.Enabled {
		return nil, errors.New("learn: Bayes is off ([spam] enabled, [spam.bayes] enabled)")
	}
	d.learn.mu.Lock()
	if d.learn.cfg != cfg {
		sc := *sec
		sc.DNSBL, sc.URIBL = nil, nil
		sc.Rules.Enabled = false // learning reads tokens only
		chk, err := spam.New(&sc, cfg, spam.Options{Store: d.services().Store})
		if err != nil {
			d.learn.mu.Unlock()
			return nil, fmt.Errorf("learn: %w", err)
		}
		d.learn.cfg, d.learn.chk = cfg, chk
	}
	chk := d.learn.chk
	d.learn.mu.Unlock()

	m, err := corpus.Parse(raw, cfg.Message.MaxHeaders)
	if err != nil {
		return nil, fmt.Errorf("learn: unreadable message: %w", err)
	}
	class := bayes.ClassHam
	if req.Class == "spam" {
		class = bayes.ClassSpam
	}
	ts := chk.TokenStore()
	id := spam.MessageID(m)
	changed, err := bayes.Learn(ctx, ts, id, spam.Tokens(m, chk.Ignore()), class, req.Forget)
	if err != nil {
		return nil, fmt.Errorf("learn: %w", err)
	}
	_, total, err := ts.Counts(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("learn: %w", err)
	}
	d.logger.Info("learned", "class", req.Class, "forget", req.Forget, "changed", changed, "message_id", id,
		"bayes_spam", total.Spam, "bayes_ham", total.Ham)
	return &control.LearnResult{Changed: changed, Spam: total.Spam, Ham: total.Ham}, nil
}

// warnUntrained logs a warning at start when Bayes is on but has not
// learned enough to score (min_spam, min_ham): spam scoring then rests
// on heuristics alone, as virus scanning off is warned about.
func (d *Server) warnUntrained(cfg *policy.Config) {
	sec := spam.ConfigOf(cfg)
	st := d.services().Store
	if !sec.Enabled || !sec.Bayes.Enabled || st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, total, err := (&bayes.Store{S: st, Prefix: sec.Bayes.Prefix}).Counts(ctx, nil)
	if err != nil {
		d.logger.Warn("Bayes: cannot read the learned counts", "error", err.Error())
		return
	}
	if total.Spam < sec.Bayes.MinSpam || total.Ham < sec.Bayes.MinHam {
		d.logger.Warn("Bayes is not trained: spam scoring uses the heuristics alone until it has learned enough (mailwarden learn --spam DIR --ham DIR, or users' moves into and out of Junk, see examples/dovecot)",
			"spam", total.Spam, "ham", total.Ham, "min_spam", sec.Bayes.MinSpam, "min_ham", sec.Bayes.MinHam)
	}
}
