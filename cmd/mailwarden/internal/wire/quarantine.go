package wire

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	Logger *slog.Logger
}

// Keep keeps a quarantine verdict's message: in store mode for the held
// recipients (the others get it), in hold mode as a record of the MTA's
// hold queue.
func (q *Quarantine) Keep(ctx context.Context, cfg *policy.Config, m *message.Message, v *policy.Verdict) (filter.Kept, error) {
	st := q.Settings
	if st.Mode == quarantine.ModeHold {
		// QUIRK(postfix): the hold queue holds the whole message, so every
		// recipient is held.
		it, err := q.Q.PutHeld(ctx, quarantine.MetaOf(m, v, m.Rcpts, CategoryOf(v)))
		if err != nil {
			q.Logger.Error("quarantine: cannot record the held message", "queue_id", m.QueueID, "error", err)
			return filter.Kept{Hold: true}, nil
		}
		return filter.Kept{Hold: true, ID: it.ID}, nil
	}
	held := quarantine.Held(cfg, v, m.Rcpts)
	if len(held) == 0 {
		return filter.Kept{}, nil // every recipient spared: delivered
	}
	out, err := q.Q.Divert(ctx, quarantine.MetaOf(m, v, held, CategoryOf(v)), m.Rcpts, m.Raw())
	if err != nil {
		if st.OnError == policy.ActionAccept {
			q.Logger.Error("quarantine: cannot keep the message; left to the MTA's hold queue", "queue_id", m.QueueID, "error", err)
			return filter.Kept{Hold: true}, nil
		}
		return filter.Kept{}, err
	}
	return filter.Kept{DeleteRcpts: out.DeleteRcpts, Discard: out.Discard, ID: out.Item.ID}, nil
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

// buildQuarantine opens the [quarantine] service; its start serves the
// page and runs expiry and digests.
func buildQuarantine(cfg *policy.Config, s *Services, o Options) (*record, error) {
	st := quarantine.SettingsOf(cfg)
	if !st.Enabled {
		return &record{}, nil
	}
	obs, _ := o.Metrics.(quarantine.Observer)
	svc, err := quarantine.Open(st, cfg.LocalDomains, quarantine.Options{Logger: o.Logger, Observer: obs})
	if err != nil {
		return nil, err
	}
	var h http.Handler
	if st.Web.Listen != "" {
		h, err = web.New(web.Config{Q: svc.Q, Signer: svc.Signer, AdminHash: []byte(st.Web.AdminPasswordHash),
			Secure: st.Web.Secure, TrustedOrigins: st.Web.TrustedOrigins, Logger: o.Logger, Learn: learner(cfg, s)})
		if err != nil {
			svc.Close()
			return nil, err
		}
	}
	s.Quarantine = &Quarantine{Service: svc, Logger: o.Logger}
	var srv *http.Server
	return &record{
		close: func() error {
			if srv != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				srv.Shutdown(ctx)
				cancel()
			}
			return svc.Close()
		},
		start: func(ctx context.Context) {
			t := time.NewTicker(st.Every.D())
			go func() {
				defer t.Stop()
				svc.Q.Maintain(ctx, svc.Digest, t.C)
			}()
			if h == nil {
				return
			}
			ln, err := net.Listen("tcp", st.Web.Listen)
			if err != nil {
				o.Logger.Error("quarantine page: cannot listen", "address", st.Web.Listen, "error", err)
				return
			}
			srv = web.NewServer(st.Web.Listen, h)
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					o.Logger.Error("quarantine page stopped", "error", err)
				}
			}()
			o.Logger.Info("quarantine page", "address", ln.Addr().String())
		},
	}, nil
}
