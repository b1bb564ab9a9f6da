package wire

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mailwarden/mailwarden/filter"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/autoreply"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/policy/quarantine/web"
	"github.com/mailwarden/mailwarden/policy/ratelimit"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/virus"
)

// Quarantine is the quarantine service as the filter uses it
// (filter.Quarantiner).
type Quarantine struct {
	*quarantine.Service
	Logger  *slog.Logger
	handler http.Handler // the review page; nil without one
}

// Keep applies the recipients' own sender lists to v (sender_lists),
// then keeps a quarantine verdict's message: in store mode for the held
// recipients (the others get it), in hold mode as a record of the MTA's
// hold queue.
func (q *Quarantine) Keep(ctx context.Context, cfg *policy.Config, m *message.Message, v *policy.Verdict) (filter.Kept, error) {
	st := q.Settings
	if st.Mode == quarantine.ModeStore && (m.Incomplete || m.RawSize() > int64(st.MaxStoreSize)) {
		return q.tooBig(m, v), nil
	}
	plan := quarantine.Plan{Category: CategoryOf(v)}
	if v.Action == policy.ActionQuarantine {
		plan.Held = quarantine.Held(cfg, v, m.Rcpts)
	}
	if st.SenderLists && (v.Mode == "" || v.Mode == policy.ModeEnforce) {
		p, err := q.Q.Personal(ctx, m.MailFrom, m.Rcpts)
		if err != nil {
			// The verdict stands as the checks made it: nothing is spared
			// without the lists, and a deny is missed (logged).
			q.Logger.Warn("quarantine: cannot read the recipients' sender lists", "queue_id", m.QueueID, "error", err)
		} else {
			plan = p.Apply(cfg, v, m.Rcpts, plan.Category, st.DenyAction, st.Mode == quarantine.ModeStore)
		}
	}
	if v.Action != policy.ActionQuarantine {
		return filter.Kept{}, nil
	}
	if st.Mode == quarantine.ModeHold {
		// QUIRK(postfix): the hold queue holds the whole message, so every
		// recipient is held.
		it, err := q.Q.PutHeld(ctx, quarantine.MetaOf(m, v, m.Rcpts, plan.Category))
		if err != nil {
			q.Logger.Error("quarantine: cannot record the held message", "queue_id", m.QueueID, "error", err)
			return filter.Kept{Hold: true}, nil
		}
		return filter.Kept{Hold: true, ID: it.ID}, nil
	}
	if len(plan.Held) == 0 {
		return filter.Kept{}, nil // every recipient spared: delivered
	}
	out, err := q.Q.Divert(ctx, quarantine.MetaOf(m, v, plan.Held, plan.Category), m.Rcpts, m.Raw())
	if err != nil {
		if st.OnError == policy.ActionAccept {
			q.Logger.Error("quarantine: cannot keep the message; left to the MTA's hold queue", "queue_id", m.QueueID, "error", err)
			q.Q.LeftToMTA(plan.Category, "store-failed")
			return filter.Kept{Hold: true}, nil
		}
		return filter.Kept{}, err
	}
	return filter.Kept{DeleteRcpts: out.DeleteRcpts, Discard: out.Discard, ID: out.Item.ID}, nil
}

// StoreMax is max_store_size in store mode (filter.Quarantiner).
func (q *Quarantine) StoreMax() int64 {
	if q.Settings.Mode != quarantine.ModeStore {
		return 0
	}
	return int64(q.Settings.MaxStoreSize)
}

// tooBig is Keep for a message the store cannot keep: not kept whole by
// the filter (past max_message_size and max_store_size, or its header
// too big) or bigger than max_store_size. A quarantine verdict leaves it
// to the MTA's hold queue, logged and counted; the recipients' sender
// lists are not read (they decide per recipient, which needs our copy).
func (q *Quarantine) tooBig(m *message.Message, v *policy.Verdict) filter.Kept {
	if v.Action != policy.ActionQuarantine {
		return filter.Kept{}
	}
	c := CategoryOf(v)
	q.Logger.Warn("quarantine: message too big to store; left to the MTA's hold queue", "queue_id", m.QueueID,
		"size", m.Size, "max_store_size", int64(q.Settings.MaxStoreSize), "kept_whole", !m.Incomplete, "category", c.String())
	q.Q.LeftToMTA(c, "too-big")
	return filter.Kept{Hold: true}
}

// CategoryOf names why a verdict quarantines: after the check whose
// action was strongest, or the score.
func CategoryOf(v *policy.Verdict) quarantine.Category {
	best, name := policy.ActionAccept, ""
	for _, c := range v.Checks {
		if c.Result.Action > best {
			best, name = c.Result.Action, c.Name
		}
	}
	switch name {
	case virus.Name:
		return quarantine.CategoryVirus
	case auth.DMARC:
		return quarantine.CategoryDMARC
	case autoreply.Name:
		return quarantine.CategoryAutoreply
	case ratelimit.Name:
		return quarantine.CategoryLimit
	case spam.Name:
		return quarantine.CategorySpam
	case "":
		if v.HasReason(policy.ReasonSpamScore) {
			return quarantine.CategorySpam
		}
	}
	return quarantine.CategoryPolicy
}

// learner is the page's "learn as ham/spam": the message goes to the
// Bayes classifier of [spam.bayes] in the state store, as `mailwarden
// learn` would put it. Nil (the buttons hidden) without Bayes.
func learner(cfg *policy.Config, s *Services) func(ctx context.Context, msg io.Reader, isSpam bool) error {
	sec := spam.ConfigOf(cfg)
	if !sec.Bayes.Enabled || s.Store == nil {
		return nil
	}
	sc := *sec
	sc.DNSBL, sc.URIBL = nil, nil // tokens only: no lookups
	sc.Rules.Enabled = false      // nor rules
	chk, err := spam.New(&sc, cfg, spam.Options{Store: s.Store})
	if err != nil {
		return nil
	}
	ts := chk.TokenStore()
	return func(ctx context.Context, r io.Reader, isSpam bool) error {
		h, body, err := message.ReadMessage(r, cfg.Message.MaxHeaders)
		if err != nil {
			return err
		}
		m := &message.Message{Header: h, Body: message.BytesBody(body)}
		class := bayes.ClassHam
		if isSpam {
			class = bayes.ClassSpam
		}
		_, err = bayes.Learn(ctx, ts, spam.MessageID(m), spam.Tokens(m, chk.Ignore()), class, false)
		return err
	}
}

// buildQuarantineIndex opens the quarantine's index. It is a service of
// its own, kept across reloads while its location is unchanged: a bbolt
// file is locked by the process holding it, so a reload that changes
// other [quarantine] settings must not open it a second time.
func buildQuarantineIndex(cfg *policy.Config, s *Services, _ Options) (*record, error) {
	st := quarantine.SettingsOf(cfg)
	if !st.Enabled {
		return &record{}, nil
	}
	ix, err := quarantine.OpenIndex(st)
	if err != nil {
		return nil, err
	}
	s.quarantineIndex = ix
	return &record{close: ix.Close}, nil
}

// page is the review page's listener, kept across reloads while
// [quarantine.web] listen is unchanged; a reload swaps the handler behind
// it (the old and the new page cannot both listen on one address).
type page struct {
	addr   string
	logger *slog.Logger
	h      atomic.Pointer[http.Handler]
	srv    *http.Server
}

func (p *page) set(h http.Handler) {
	if h != nil {
		p.h.Store(&h)
	}
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := p.h.Load()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

func buildQuarantinePage(cfg *policy.Config, s *Services, o Options) (*record, error) {
	st := quarantine.SettingsOf(cfg)
	if !st.Enabled || st.Web.Listen == "" {
		return &record{}, nil
	}
	p := &page{addr: st.Web.Listen, logger: o.Logger}
	p.srv = web.NewServer(p.addr, p)
	s.page = p
	return &record{
		close: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return p.srv.Shutdown(ctx)
		},
		start: func(ctx context.Context) {
			ln, err := net.Listen("tcp", p.addr)
			if err != nil {
				o.Logger.Error("quarantine page: cannot listen", "address", p.addr, "error", err)
				return
			}
			go func() {
				if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					o.Logger.Error("quarantine page stopped", "error", err)
				}
			}()
			o.Logger.Info("quarantine page", "address", ln.Addr().String())
		},
	}, nil
}

// buildQuarantine builds the [quarantine] service over the kept index;
// its start puts its page behind the listener and runs expiry and
// digests. Every setting applies on reload.
func buildQuarantine(cfg *policy.Config, s *Services, o Options) (*record, error) {
	st := quarantine.SettingsOf(cfg)
	if !st.Enabled {
		return &record{}, nil
	}
	obs, _ := o.Metrics.(quarantine.Observer)
	svc, err := quarantine.Open(st, cfg.LocalDomains, quarantine.Options{Logger: o.Logger, Observer: obs, Index: s.quarantineIndex})
	if err != nil {
		return nil, err
	}
	var h http.Handler
	if st.Web.Listen != "" {
		h, err = web.New(web.Config{Q: svc.Q, Signer: svc.Signer, AdminHash: []byte(st.Web.AdminPasswordHash),
			Secure: st.Web.Secure, TrustedOrigins: st.Web.TrustedOrigins, Logger: o.Logger, Learn: learner(cfg, s),
			SenderLists: st.SenderLists})
		if err != nil {
			svc.Close()
			return nil, err
		}
	}
	s.Quarantine = &Quarantine{Service: svc, Logger: o.Logger, handler: h}
	return &record{
		close: svc.Close,
		start: func(ctx context.Context) {
			if s.page != nil {
				s.page.set(h)
			}
			t := time.NewTicker(st.Every.D())
			go func() {
				defer t.Stop()
				svc.Q.Maintain(ctx, svc.Digest, t.C)
			}()
		},
	}, nil
}
