package auth

import (
	"context"
	"crypto"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/message"
)

// SignSectionName is the [dkim_sign] section and the signing step's name.
const SignSectionName = "dkim_sign"

// SignConfig is the [dkim_sign] section: DKIM signing of mail of ours
// (policy/auth/sign). Without keys nothing is signed.
type SignConfig struct {
	Enabled bool            `toml:"enabled"`
	Timeout policy.Duration `toml:"timeout"`
	// OnSignError is what happens when signing fails (a key that cannot
	// sign, a body that cannot be read): tempfail (default) or accept
	// (delivered unsigned; counted as dkim_sign-error).
	OnSignError policy.Action `toml:"on_sign_error"`
	// Expire is x= minus t= (default a week).
	Expire policy.Duration `toml:"expire"`
	// Ed25519 lets the Ed25519 keys of a rule sign, beside an RSA key.
	Ed25519 bool `toml:"ed25519"`
	// Senders lists, per SASL user, the From domains it may send as
	// (".example.com" for subdomains); an unlisted user may send as the
	// domain of its login name.
	Senders map[string][]string `toml:"senders"`
	Keys    []sign.KeyConfig    `toml:"key"`
	Rules   []sign.RuleConfig   `toml:"rule"`
}

// DefaultSignConfig is the [dkim_sign] default: on, no keys.
func DefaultSignConfig() *SignConfig {
	return &SignConfig{Enabled: true, Timeout: policy.Duration(10 * time.Second), OnSignError: policy.ActionTempfail}
}

// SignConfigOf returns the [dkim_sign] section of cfg (the defaults when absent).
func SignConfigOf(cfg *policy.Config) *SignConfig {
	if c := policy.SectionOf[*SignConfig](cfg, SignSectionName); c != nil {
		return c
	}
	return DefaultSignConfig()
}

// TableConfig is the sign package's view of the section.
func (c *SignConfig) TableConfig() sign.Config {
	return sign.Config{Keys: c.Keys, Rules: c.Rules, Expire: c.Expire.D(), Ed25519: c.Ed25519}
}

// KeyMetrics is the metrics seam of signing; the daemon's metrics
// implement it (mailwarden_dkim_key_record{key,state},
// mailwarden_dkim_signatures_total{key}).
type KeyMetrics interface {
	DKIMKeyState(key string, state sign.RecordState)
	DKIMSigned(key string)
}

// LoadKeys is how key files are read (tests replace it).
var LoadKeys func(path string) (crypto.Signer, error) = sign.LoadKey

// SignModule is the signing step. tracker (a service the daemon builds
// and keeps checking, see NewKeyTracker) says which keys have a matching
// DNS record; nil lets every key sign (`mailwarden check`).
func SignModule(tracker *sign.Tracker) policy.Module {
	return policy.Module{
		Name:    SignSectionName,
		Default: func() any { return DefaultSignConfig() },
		Build: func(section any, env *policy.Env) ([]policy.Step, error) {
			c := section.(*SignConfig)
			if !c.Enabled || len(c.Keys) == 0 {
				return nil, nil
			}
			if c.OnSignError != policy.ActionTempfail && c.OnSignError != policy.ActionAccept {
				return nil, errors.New("on_sign_error must be tempfail or accept")
			}
			tab, err := sign.NewTable(c.TableConfig(), LoadKeys)
			if err != nil {
				return nil, err
			}
			km, _ := env.Metrics.(KeyMetrics)
			st := &signStep{
				metrics: km,
				cfg:     env.Config,
				signer:  &sign.Signer{Table: tab, Tracker: tracker, Senders: sign.Senders(c.Senders)},
				log:     env.Logger,
				now:     time.Now,
			}
			return []policy.Step{{Check: st, StepConfig: policy.StepConfig{Enabled: true, Timeout: c.Timeout, OnError: c.OnSignError}}}, nil
		},
	}
}

// signStep signs at the end of the message (a policy.Finisher).
type signStep struct {
	metrics KeyMetrics // nil: none
	cfg     *policy.Config
	signer  *sign.Signer
	log     *slog.Logger
	now     func() time.Time
}

func (s *signStep) Name() string { return SignSectionName }

// Check is never called: the pipeline runs a Finisher only at the end.
func (s *signStep) Check(context.Context, *message.Message, policy.Results) (policy.Result, error) {
	return policy.Result{Status: policy.StatusNone}, nil
}

// Finish signs the header as it will leave (our Authentication-Results
// and other changes included) and the body; the signatures go on top.
func (s *signStep) Finish(_ context.Context, m *message.Message, h message.Header, _ *policy.Verdict) ([]message.Field, error) {
	fields := make([]sign.Field, len(h))
	for i, f := range h {
		fields[i] = sign.Field{Name: f.Name, Value: f.Value}
	}
	out := s.signer.Sign(sign.Request{
		Header: fields,
		Body:   m.BodyReader(),
		Ours:   s.cfg.FromUs(m.Client, m.Auth),
		User:   m.Auth,
		Now:    s.now(),
	})
	if out.Status == sign.StatusError {
		return nil, out.Err
	}
	var add []message.Field
	var keys []string
	for _, sig := range out.Signatures {
		add = append(add, message.Field{Name: "DKIM-Signature", Value: " " + sig.Value})
		keys = append(keys, sig.Key.Name)
		if s.metrics != nil {
			s.metrics.DKIMSigned(sig.Key.Name)
		}
	}
	if s.log != nil {
		s.log.Debug("dkim signing", "queue_id", m.QueueID, "status", string(out.Status), "from", out.From, "keys", keys)
	}
	return add, nil
}

// NewKeyTracker loads the keys of a [dkim_sign] section for the record
// tracker service; the daemon checks them (KeyWatcher) at start, after
// every reload, and every sign.CheckInterval.
func NewKeyTracker(c *SignConfig) (*sign.Tracker, []*sign.Key, error) {
	if !c.Enabled || len(c.Keys) == 0 {
		return nil, nil, nil
	}
	tab, err := sign.NewTable(c.TableConfig(), LoadKeys)
	if err != nil {
		return nil, nil, err
	}
	return sign.NewTracker(), tab.Keys(), nil
}

// KeyWatcher keeps the record states of a Tracker current: the daemon
// checks the keys when the service starts, again after every reload
// (Check: an operator who just published a record reloads to make the
// key sign, whether or not [dkim_sign] changed), and every
// sign.CheckInterval. Each check asks the DNS servers, not our cache
// (dns.Resolver.Fresh), and logs every key whose state changed.
type KeyWatcher struct {
	Tracker  *sign.Tracker
	Keys     []*sign.Key
	Resolver dkimkey.Resolver
	Log      *slog.Logger // nil: none
	Metrics  KeyMetrics   // nil: none
	// Now stamps each check (nil: time.Now); Tick triggers the periodic
	// checks (nil: a ticker of sign.CheckInterval). Tests pass fakes.
	Now  func() time.Time
	Tick <-chan time.Time

	mu sync.Mutex // one check at a time
}

// Check checks every key now, for at most 10 s.
func (w *KeyWatcher) Check(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	before := map[string]sign.RecordState{}
	for _, k := range w.Keys {
		before[k.Name] = w.Tracker.State(k.Name).State
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	w.Tracker.CheckAll(cctx, w.Resolver, w.Keys, now())
	cancel()
	for _, k := range w.Keys {
		st := w.Tracker.State(k.Name)
		if w.Metrics != nil {
			w.Metrics.DKIMKeyState(k.Name, st.State)
		}
		if st.State != before[k.Name] && w.Log != nil {
			lvl := slog.LevelInfo
			if st.State != sign.RecordOK {
				lvl = slog.LevelWarn
			}
			w.Log.Log(ctx, lvl, "dkim key record", "key", k.Name, "state", string(st.State), "signs", st.Usable, "error", errString(st.Err))
		}
	}
}

// Start checks the keys now (before the pipeline serves) and then on
// every tick until ctx ends.
func (w *KeyWatcher) Start(ctx context.Context) {
	w.Check(ctx)
	tick := w.Tick
	var stop func()
	if tick == nil {
		t := time.NewTicker(sign.CheckInterval)
		tick, stop = t.C, t.Stop
	}
	go func() {
		if stop != nil {
			defer stop()
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick:
				w.Check(ctx)
			}
		}
	}()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
