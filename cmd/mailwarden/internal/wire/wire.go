// Package wire is mailwarden's composition root: the config sections, the
// services the checks share and the modules built on them, wired
// explicitly (no init hooks, no registry).
//
// Mechanism. Loading a config needs every section's schema; a module's
// schema does not depend on its services, so Sections is Modules over an
// empty Services. Then BuildServices makes the long-lived values from
// their own sections (resolver and its cache from [dns], the state store
// from [store], the anti-virus engines from [[virus.engine]] or [clamav],
// the SRS rewriter from [srs], the health prober from [health], the spool
// guard from [spool]), and
// Modules hands each check the ones it needs as typed constructor
// arguments. On reload, BuildServices keeps every service whose own
// section is unchanged (the DNS cache survives a SIGHUP) and returns the
// replaced ones for the daemon to close once the old pipeline drains.
// Building starts no goroutine: only Services.Start does, and only the
// daemon calls it (`check` and `eval` start nothing).
package wire

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/dmarc"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/autoreply"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/policy/ratelimit"
	"github.com/mailwarden/mailwarden/policy/relay"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/spool"
	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/virus"
)

// Modules lists every module in pipeline order (independent checks run
// concurrently anyway; dependencies are declared by the checks with
// After), each given the services it uses. Adding a check means one line
// here and its section in examples/mailwarden.toml.
func Modules(s *Services) []policy.Module {
	return []policy.Module{
		// Services' sections: no step of their own.
		dns.Section(), store.Section(), virus.ClamAVSection(), health.Section(), quarantine.Section(), dmarc.Section(),
		// Checks.
		auth.SignModule(s.KeyTracker),
		auth.Module(s.Resolver, authReports(s.Reports)),
		spam.ModuleWith(spam.Options{Resolver: spamResolver(s.Resolver), Store: s.Store, Tokens: s.Tokens, RuleCache: s.Rules}),
		ratelimit.Module(s.Store),
		autoreply.SRSModule(s.SRS),
		autoreply.Module(s.Store, s.SRS),
		virus.Module(s.Scanners),
		relay.Module(), relay.LocalOnlyModule(),
		spool.Module(s.Spool),
	}
}

// authReports keeps a nil service a nil interface.
func authReports(s *dmarc.Service) auth.ReportSink {
	if s == nil {
		return nil
	}
	return s.Sink()
}

// spamResolver keeps a nil *dns.Resolver a nil interface.
func spamResolver(r *dns.Resolver) spam.Resolver {
	if r == nil {
		return nil
	}
	return r
}

// Sections is the schema of the config file: every module's section plus
// extra (the daemon's own, e.g. [listen], [control], [metrics]).
func Sections(extra ...policy.Module) []policy.Module {
	return append(Modules(&Services{}), extra...)
}

// Options are what the services report to.
type Options struct {
	Logger *slog.Logger
	// Metrics may implement health.Reporter and spool.Gauges.
	Metrics policy.Metrics
}

// Services are the long-lived values the checks share. A field is nil
// when its section disables it.
type Services struct {
	Resolver *dns.Resolver
	Store    store.Store
	// Tokens are the Bayes counts over Store (with an embedded store, the
	// whole table in memory, loaded once and kept across reloads).
	Tokens   bayes.TokenStore
	Scanners []virus.Scanner
	SRS      *autoreply.SRS
	Prober   *health.Prober
	Spool    *spool.Guard
	// KeyTracker says which DKIM signing keys have a matching record.
	KeyTracker *sign.Tracker
	// Quarantine is our own quarantine ([quarantine] enabled).
	Quarantine *Quarantine
	// quarantineIndex and page outlive a reload that changes other
	// [quarantine] settings (the bbolt lock, the listening address).
	quarantineIndex quarantine.Index
	page            *page
	Reports         *dmarc.Service // DMARC aggregate reports; nil when off
	// Rules keeps the compiled SpamAssassin rules across reloads and
	// dry-run checks (compiling them costs seconds of CPU).
	Rules *spam.RuleCache

	mu   sync.Mutex
	recs map[string]*record
	kept []*record // records taken over from the set in force, for Start
}

// record is one service's lifecycle: the config it was built from (its
// identity across reloads), how to close it, what runs in its background.
type record struct {
	key   any
	close func() error
	start func(ctx context.Context) // nil: nothing runs in the background
	// reload, when not nil, runs when a reload keeps the started service
	// (its section unchanged): a service that watches the world outside
	// the config looks again at once.
	reload  func(ctx context.Context)
	cancel  context.CancelFunc
	started bool
}

func (r *record) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	if r.close != nil {
		return r.close()
	}
	return nil
}

// service describes how to build one kind of service.
type service struct {
	name  string
	key   func(cfg *policy.Config) any
	build func(cfg *policy.Config, s *Services, o Options) (*record, error)
	copy  func(from, to *Services) // moves the typed value of a kept service
}

// services lists every service the modules use, in build order.
var services = []service{
	{
		name: dns.SectionName,
		key:  func(cfg *policy.Config) any { return *dns.ConfigOf(cfg) },
		build: func(cfg *policy.Config, s *Services, _ Options) (*record, error) {
			r, err := dns.New(dns.ConfigOf(cfg))
			if err != nil {
				return nil, err
			}
			s.Resolver = r
			return &record{close: r.Close}, nil
		},
		copy: func(from, to *Services) { to.Resolver = from.Resolver },
	},
	{
		name: store.SectionName,
		key:  func(cfg *policy.Config) any { return *store.ConfigOf(cfg) },
		build: func(cfg *policy.Config, s *Services, _ Options) (*record, error) {
			st, err := store.Open(store.ConfigOf(cfg))
			if err != nil {
				return nil, err
			}
			s.Store = st
			return &record{close: st.Close, start: func(ctx context.Context) { go store.Sweep(ctx, st, time.Hour) }}, nil
		},
		copy: func(from, to *Services) { to.Store = from.Store },
	},
	{
		// After [dns] and [store]: it uses both, so it is rebuilt when
		// either changes.
		name: dmarc.SectionName,
		key: func(cfg *policy.Config) any {
			c := dmarc.ConfigOf(cfg)
			if !c.Enabled {
				return "off"
			}
			return fmt.Sprintf("%#v|%#v|%#v", *c, *store.ConfigOf(cfg), *dns.ConfigOf(cfg))
		},
		build: func(cfg *policy.Config, s *Services, o Options) (*record, error) {
			c := dmarc.ConfigOf(cfg)
			if !c.Enabled {
				return &record{}, nil
			}
			if s.Store == nil || s.Resolver == nil {
				return nil, fmt.Errorf("%s: needs [store] and [dns]", dmarc.SectionName)
			}
			svc := dmarc.New(c, s.Store, s.Resolver, o.Logger)
			s.Reports = svc
			return &record{start: svc.Start, close: svc.Wait}, nil
		},
		copy: func(from, to *Services) { to.Reports = from.Reports },
	},
	{
		name: "spam.bayes",
		key: func(cfg *policy.Config) any {
			sc := spam.ConfigOf(cfg)
			return struct {
				Store              store.Config
				On                 bool
				Prefix             string
				CacheSize, MemToks int
				CacheTTL           policy.Duration
			}{*store.ConfigOf(cfg), sc.Enabled && sc.Bayes.Enabled, sc.Bayes.Prefix, sc.Bayes.CacheSize, sc.Bayes.MemoryTokens, sc.Bayes.CacheTTL}
		},
		build: func(cfg *policy.Config, s *Services, o Options) (*record, error) {
			sc := spam.ConfigOf(cfg)
			if !sc.Enabled || !sc.Bayes.Enabled || s.Store == nil {
				return &record{}, nil
			}
			s.Tokens = spam.NewTokens(s.Store, &sc.Bayes, o.Logger)
			t, ok := s.Tokens.(*bayes.Table)
			if !ok {
				return &record{}, nil
			}
			// The daemon loads the token table at start, before mail
			// comes: loaded on the first message instead, the Bayes reads
			// of the messages that arrive meanwhile go to the store at
			// random places and pull most of the file into RSS.
			log := o.Logger
			return &record{start: func(ctx context.Context) {
				go func() {
					if err := t.Load(ctx); err != nil && log != nil {
						log.Warn("bayes: token table stays in the store", "error", err.Error())
					}
				}()
			}}, nil
		},
		copy: func(from, to *Services) { to.Tokens = from.Tokens },
	},
	{
		name: virus.ClamAVSectionName,
		key: func(cfg *policy.Config) any {
			vc := virus.ConfigOf(cfg)
			return struct {
				C          virus.ClamAVConfig
				Engines    []virus.Engine
				Timeout    policy.Duration
				QueueWait  policy.Duration
				Enabled    bool
				Require    virus.Require
				MinEngines int
			}{*virus.ClamAVConfigOf(cfg), vc.Engines, vc.Timeout, vc.QueueTimeout, vc.Enabled, vc.Require, vc.MinEngines}
		},
		build: func(cfg *policy.Config, s *Services, o Options) (*record, error) {
			vc := virus.ConfigOf(cfg)
			if !vc.Enabled {
				return &record{}, nil
			}
			sc, err := virus.NewScanners(vc, virus.ClamAVConfigOf(cfg))
			if err != nil {
				return nil, err
			}
			s.Scanners = sc
			return &record{
				start: func(ctx context.Context) { go virus.Ping(ctx, sc, vc.OnError, o.Logger) },
				close: func() error { return virus.Close(sc) },
			}, nil
		},
		copy: func(from, to *Services) { to.Scanners = from.Scanners },
	},
	{
		name: autoreply.SRSSectionName,
		key: func(cfg *policy.Config) any {
			return struct {
				C     autoreply.SRSConfig
				Local []string
			}{*autoreply.SRSConfigOf(cfg), cfg.LocalDomains}
		},
		build: func(cfg *policy.Config, s *Services, _ Options) (*record, error) {
			srs, err := autoreply.NewSRS(autoreply.SRSConfigOf(cfg), cfg)
			if err != nil {
				return nil, err
			}
			s.SRS = srs
			return &record{}, nil
		},
		copy: func(from, to *Services) { to.SRS = from.SRS },
	},
	{
		name: health.SectionName,
		key:  func(cfg *policy.Config) any { return *health.ConfigOf(cfg) },
		build: func(cfg *policy.Config, s *Services, o Options) (*record, error) {
			c := health.ConfigOf(cfg)
			if !c.Enabled {
				return &record{}, nil
			}
			rep, _ := o.Metrics.(health.Reporter)
			p := health.New(c, health.Options{Logger: o.Logger, Reporter: rep})
			s.Prober = p
			return &record{close: p.Close, start: func(context.Context) { p.Start() }}, nil
		},
		copy: func(from, to *Services) { to.Prober = from.Prober },
	},
	{
		// The DKIM keys' record states: checked when started (at start
		// and after a reload that changed [dkim_sign]), after every other
		// reload (record.reload: the operator may just have published a
		// record) and every 10 min.
		name: auth.SignSectionName,
		key: func(cfg *policy.Config) any {
			// With keys, a new resolver means a new tracker (the old one's
			// resolver is closed when retired).
			k := struct {
				C   auth.SignConfig
				DNS dns.Config
			}{C: *auth.SignConfigOf(cfg)}
			if len(k.C.Keys) > 0 {
				k.DNS = *dns.ConfigOf(cfg)
			}
			return k
		},
		build: func(cfg *policy.Config, s *Services, o Options) (*record, error) {
			tr, keys, err := auth.NewKeyTracker(auth.SignConfigOf(cfg))
			if err != nil || tr == nil {
				return &record{}, err
			}
			s.KeyTracker = tr
			km, _ := o.Metrics.(auth.KeyMetrics)
			w := &auth.KeyWatcher{Tracker: tr, Keys: keys, Log: o.Logger, Metrics: km}
			if s.Resolver != nil {
				w.Resolver = s.Resolver.Fresh()
			}
			return &record{start: w.Start, reload: w.Check}, nil
		},
		copy: func(from, to *Services) { to.KeyTracker = from.KeyTracker },
	},
	{
		name: spool.Name,
		key: func(cfg *policy.Config) any {
			c := spool.ConfigOf(cfg)
			return struct {
				C    spool.Config
				Dirs []string
			}{*c, spool.Dirs(c, cfg)}
		},
		build: func(cfg *policy.Config, s *Services, o Options) (*record, error) {
			c := spool.ConfigOf(cfg)
			if !c.Enabled {
				return &record{}, nil
			}
			g := spool.New(c, spool.Dirs(c, cfg), spool.Options{Logger: o.Logger, Metrics: o.Metrics})
			s.Spool = g
			return &record{close: g.Close, start: func(context.Context) { g.Start() }}, nil
		},
		copy: func(from, to *Services) { to.Spool = from.Spool },
	},
	{
		name: quarantine.SectionName + ".index",
		key: func(cfg *policy.Config) any {
			st := quarantine.SettingsOf(cfg)
			return [2]any{st.Enabled, st.IndexKey()}
		},
		build: buildQuarantineIndex,
		copy:  func(from, to *Services) { to.quarantineIndex = from.quarantineIndex },
	},
	{
		name: quarantine.SectionName + ".page",
		key: func(cfg *policy.Config) any {
			st := quarantine.SettingsOf(cfg)
			return [2]any{st.Enabled, st.Web.Listen}
		},
		build: buildQuarantinePage,
		copy:  func(from, to *Services) { to.page = from.page },
	},
	{
		name: quarantine.SectionName,
		key: func(cfg *policy.Config) any {
			type key struct {
				S     quarantine.Settings
				Local []string
				Store store.Config
				Spam  spam.Config
			}
			st := quarantine.SettingsOf(cfg)
			if !st.Enabled {
				return key{S: *st}
			}
			// The page's "learn" uses the store and [spam]'s Bayes.
			return key{*st, cfg.LocalDomains, *store.ConfigOf(cfg), *spam.ConfigOf(cfg)}
		},
		build: buildQuarantine,
		copy: func(from, to *Services) {
			to.Quarantine = from.Quarantine
			if to.page != nil && from.Quarantine != nil {
				to.page.set(from.Quarantine.handler) // a new listener, the same page
			}
		},
	},
}

// BuildServices builds the services cfg asks for. With old (the set in
// force) it keeps every service whose own section is unchanged and builds
// the rest; retired are the replaced services, to close once no message
// uses the old pipeline (policy.Holder.Swap does). On error nothing of old
// is touched and what was built is closed.
func BuildServices(cfg *policy.Config, old *Services, o Options) (s *Services, retired []io.Closer, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s = &Services{recs: map[string]*record{}, Rules: &spam.RuleCache{}}
	if old != nil && old.Rules != nil {
		s.Rules = old.Rules // recompiled only when the rules changed
	}
	var fresh []*record
	defer func() {
		if err != nil {
			for _, r := range fresh {
				r.Close()
			}
		}
	}()
	for _, sv := range services {
		key := sv.key(cfg)
		if old != nil {
			old.mu.Lock()
			or := old.recs[sv.name]
			old.mu.Unlock()
			if or != nil && reflect.DeepEqual(or.key, key) {
				sv.copy(old, s)
				s.recs[sv.name] = or
				s.kept = append(s.kept, or)
				continue
			}
		}
		r, err := sv.build(cfg, s, o)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", sv.name, err)
		}
		r.key = key
		s.recs[sv.name] = r
		fresh = append(fresh, r)
	}
	if old != nil {
		old.mu.Lock()
		for name, or := range old.recs {
			if s.recs[name] != or {
				retired = append(retired, or)
			}
		}
		old.mu.Unlock()
	}
	return s, retired, nil
}

// Start starts the background loops (health prober, spool poller, bolt
// sweeper, the first clamd ping, the DKIM key checks) of the services not
// started yet; kept services go on running, and those with a reload hook
// (the DKIM key records) run it now. Only the daemon calls it; ctx ends
// the loops that take one, Close or retirement the others.
func (s *Services) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.kept {
		if r.started && r.reload != nil {
			r.reload(ctx)
		}
	}
	s.kept = nil
	for _, r := range s.recs {
		if r.started || r.start == nil {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		r.cancel, r.started = cancel, true
		r.start(rctx)
	}
}

// Close closes every service (at shutdown, or after a one-shot command).
func (s *Services) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Reverse build order: a service closes before the ones it uses (the
	// DMARC report queue drains into the store before the store closes).
	var cs []io.Closer
	for i := len(services) - 1; i >= 0; i-- {
		if r := s.recs[services[i].name]; r != nil {
			cs = append(cs, r)
		}
	}
	s.recs = nil
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// CloseExcept closes the services of s that keep does not share: a reload
// that failed after BuildServices leaves the set in force as it was.
func (s *Services) CloseExcept(keep *Services) error {
	shared := map[*record]bool{}
	if keep != nil {
		keep.mu.Lock()
		for _, r := range keep.recs {
			shared[r] = true
		}
		keep.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for _, r := range s.recs {
		if !shared[r] {
			if err := r.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	s.recs = nil
	return first
}

// Pipeline builds services and the pipeline for a one-shot command
// (`check`, `eval`, tests): nothing is started. Close the services after
// the pipeline.
func Pipeline(cfg *policy.Config, log *slog.Logger, metrics policy.Metrics) (*policy.Pipeline, *Services, error) {
	s, _, err := BuildServices(cfg, nil, Options{Logger: log, Metrics: metrics})
	if err != nil {
		return nil, nil, err
	}
	p, err := policy.New(cfg, Modules(s), log, nil, metrics)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return p, s, nil
}

// DryRun is s for a verdict that must leave no trace (`check` answered by
// the daemon): the same services, with the state store read-only
// (store.DryRun) and neither DMARC report records nor our quarantine.
// Nothing is built or started; closing it is not needed.
func (s *Services) DryRun() *Services {
	d := &Services{Resolver: s.Resolver, Scanners: s.Scanners, SRS: s.SRS, Prober: s.Prober, Spool: s.Spool, Rules: s.Rules}
	if s.Store != nil {
		d.Store = store.DryRun(s.Store)
	}
	return d
}
