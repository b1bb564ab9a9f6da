package quarantine

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
)

// SectionName is the quarantine's config section.
const SectionName = "quarantine"

// Settings is the [quarantine] section.
type Settings struct {
	// Enabled turns our own quarantine on; off, "quarantine" verdicts go
	// to the MTA's hold queue as before, unrecorded.
	Enabled bool `toml:"enabled"`
	// Mode: "store" keeps the message ourselves (delrcpt for the
	// quarantined recipients); "hold" leaves it in Postfix's hold queue and
	// records it.
	Mode Mode `toml:"mode"`
	// Dir is where the messages are kept (store mode).
	Dir string `toml:"dir"`
	// Index: a bbolt file path, or a redis:// URL for several MTAs that
	// share Dir.
	Index       string          `toml:"index"`
	OpenTimeout policy.Duration `toml:"open_timeout"`
	// OnError is what the MTA is told when the store fails: tempfail
	// (default) or accept (the message goes to the MTA's hold queue).
	OnError policy.Action `toml:"on_error"`
	// Retention per category name; missing ones get DefaultRetention.
	Retention map[string]policy.Duration `toml:"retention"`
	MaxBytes  policy.Size                `toml:"max_bytes"`
	// MaxStoreSize is the largest message the store keeps (store mode).
	// With max_message_size_action = "quarantine", a message past
	// max_message_size (not checked) is still stored when under it;
	// bigger ones are left to the MTA's hold queue, logged and counted.
	MaxStoreSize policy.Size `toml:"max_store_size"`
	// SecretFile holds the HMAC secret of release headers, digest links
	// and sessions (at least 16 bytes; `head -c 32 /dev/urandom`).
	SecretFile string `toml:"secret_file"`
	// ReleaseTo is the MTA's re-injection listener without milters.
	ReleaseTo string `toml:"release_to"`
	// Postfix commands for hold mode.
	Postsuper     string `toml:"postsuper"`
	Postqueue     string `toml:"postqueue"`
	PostfixConfig string `toml:"postfix_config"`
	// SenderLists: the recipients' own sender lists ("release and allow
	// sender", "deny sender" on the page) are read for every message.
	SenderLists bool `toml:"sender_lists"`
	// DenyAction is what a sender denied by every recipient gets:
	// quarantine (default) or reject. A sender denied by some recipients
	// only is quarantined for them in store mode.
	DenyAction policy.Action `toml:"deny_action"`
	// Every is how often expiry and digests run.
	Every  policy.Duration `toml:"every"`
	Digest DigestSettings  `toml:"digest"`
	Web    WebSettings     `toml:"web"`
}

// DigestSettings is [quarantine.digest].
type DigestSettings struct {
	Enabled bool   `toml:"enabled"`
	From    string `toml:"from"`
	// SMTP is the local MTA's listener the digests go to: by default the
	// re-injection listener without milters (release_to's default). A
	// digest lists spam subjects and senders, so a content filter on its
	// way, ours included, would hold it as spam.
	SMTP string `toml:"smtp"`
	// LocalDomains get digests; empty: the top-level local_domains.
	LocalDomains []string `toml:"local_domains"`
}

// WebSettings is [quarantine.web].
type WebSettings struct {
	// Listen is the page's address; "" serves no page.
	Listen string `toml:"listen"`
	// BaseURL is the page as users reach it (the digest's links).
	BaseURL string `toml:"base_url"`
	// AdminPasswordHash is a bcrypt hash (htpasswd -nbB admin PASSWORD,
	// the part after the colon); "" disables the admin sign-in.
	AdminPasswordHash string `toml:"admin_password_hash"`
	// Secure marks cookies Secure (the page is behind HTTPS).
	Secure bool `toml:"secure"`
	// TrustedOrigins may POST when a proxy rewrites Host.
	TrustedOrigins []string `toml:"trusted_origins"`
}

// DefaultDir is where the messages are kept by default.
const DefaultDir = "/var/lib/mailwarden/quarantine"

// DefaultSettings are the section's defaults.
func DefaultSettings() *Settings {
	return &Settings{
		Mode: ModeStore, Dir: DefaultDir, OpenTimeout: policy.Duration(5 * time.Second),
		OnError: policy.ActionTempfail, ReleaseTo: "127.0.0.1:10026",
		Postsuper: "postsuper", Postqueue: "postqueue", Every: policy.Duration(time.Hour),
		SenderLists: true, DenyAction: policy.ActionQuarantine, MaxStoreSize: 128 << 20,
		Digest: DigestSettings{SMTP: "127.0.0.1:10026"},
		Web:    WebSettings{Listen: "127.0.0.1:8025"},
	}
}

// Validate checks the section.
func (s *Settings) Validate() error {
	if !s.Enabled {
		return nil
	}
	var errs []error
	if s.Mode == ModeStore && !filepath.IsAbs(s.Dir) {
		errs = append(errs, policy.KeyErr("dir", "%q must be an absolute path", s.Dir))
	}
	if s.Index != "" && !strings.HasPrefix(s.Index, "redis://") && !strings.HasPrefix(s.Index, "unix://") && !filepath.IsAbs(s.Index) {
		errs = append(errs, policy.KeyErr("index", "%q: want an absolute file path or a redis:// URL", s.Index))
	}
	if s.OnError != policy.ActionTempfail && s.OnError != policy.ActionAccept {
		errs = append(errs, policy.KeyErr("on_error", "want tempfail or accept"))
	}
	if s.DenyAction != policy.ActionQuarantine && s.DenyAction != policy.ActionReject {
		errs = append(errs, policy.KeyErr("deny_action", "want quarantine or reject"))
	}
	if s.MaxStoreSize < 0 {
		errs = append(errs, policy.KeyErr("max_store_size", "must not be negative"))
	}
	for k, d := range s.Retention {
		if _, err := ParseCategory(k); err != nil {
			errs = append(errs, policy.KeyErr("retention."+k, "unknown category (want spam, virus, policy, dmarc, limit or autoreply)"))
		} else if d <= 0 {
			errs = append(errs, policy.KeyErr("retention."+k, "must be positive"))
		}
	}
	if s.SecretFile == "" {
		errs = append(errs, policy.KeyErr("secret_file", "required: the release header, digest links and sessions are signed with it"))
	}
	if _, _, err := net.SplitHostPort(s.ReleaseTo); s.Mode == ModeStore && err != nil {
		errs = append(errs, policy.KeyErr("release_to", "%q: want host:port", s.ReleaseTo))
	}
	if s.Every <= 0 {
		errs = append(errs, policy.KeyErr("every", "must be positive"))
	}
	if s.Digest.Enabled {
		if !strings.Contains(s.Digest.From, "@") {
			errs = append(errs, policy.KeyErr("digest.from", "want an address"))
		}
		if s.Web.BaseURL == "" {
			errs = append(errs, policy.KeyErr("web.base_url", "the digest links need it"))
		}
	}
	if s.Web.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Web.Listen); err != nil {
			errs = append(errs, policy.KeyErr("web.listen", "%q: want host:port", s.Web.Listen))
		}
	}
	if h := s.Web.AdminPasswordHash; h != "" && !strings.HasPrefix(h, "$2") {
		errs = append(errs, policy.KeyErr("web.admin_password_hash", "want a bcrypt hash ($2a$, $2b$ or $2y$)"))
	}
	return errors.Join(errs...)
}

// Section is the [quarantine] section. It builds no step: the daemon
// builds the service (Open) and hands it to the filter.
func Section() policy.Module {
	return policy.Module{Name: SectionName, Default: func() any { return DefaultSettings() }}
}

// SettingsOf returns the [quarantine] section of cfg (defaults when absent).
func SettingsOf(cfg *policy.Config) *Settings {
	if s := policy.SectionOf[*Settings](cfg, SectionName); s != nil {
		return s
	}
	return DefaultSettings()
}

// Service is the quarantine as the daemon runs it.
type Service struct {
	Settings *Settings
	Q        *Quarantine
	Signer   *Signer
	Digest   *Digest // nil when off

	ownIndex bool // Close closes the index (Open opened it)
}

// IndexKey is what identifies s's index across reloads: the bbolt path
// (dir/index.db by default) or the Redis URL, and the open timeout.
func (s *Settings) IndexKey() string {
	return s.indexPath() + "\x00" + s.OpenTimeout.D().String()
}

func (s *Settings) indexPath() string {
	if s.Index == "" {
		return filepath.Join(s.Dir, "index.db")
	}
	return s.Index
}

// OpenIndex opens the index of s: Redis for a redis:// or unix:// URL,
// else the bbolt file.
func OpenIndex(s *Settings) (Index, error) {
	switch p := s.indexPath(); {
	case strings.HasPrefix(p, "redis://"), strings.HasPrefix(p, "unix://"):
		return NewRedisIndex(p, "mailwarden:q:", s.OpenTimeout.D())
	default:
		return OpenBolt(p, s.OpenTimeout.D())
	}
}

// Open builds the service of s (enabled); it opens the index. local are
// the site's domains (digests go to their recipients).
func Open(s *Settings, local []string, o Options) (*Service, error) {
	secret, err := os.ReadFile(s.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("quarantine: secret_file: %w", err)
	}
	sg, err := NewSigner([]byte(strings.TrimSpace(string(secret))))
	if err != nil {
		return nil, err
	}
	ix := o.Index
	if ix == nil {
		if ix, err = OpenIndex(s); err != nil {
			return nil, err
		}
	}
	ret := map[Category]time.Duration{}
	for k, d := range s.Retention {
		c, _ := ParseCategory(k)
		ret[c] = d.D()
	}
	cfg := Config{Dir: s.Dir, Index: ix, Retention: ret, MaxBytes: int64(s.MaxBytes), Logger: o.Logger, Observer: o.Observer}
	if s.Mode == ModeHold {
		cfg.Hold = &HoldQueue{Postsuper: s.Postsuper, Postqueue: s.Postqueue, ConfigDir: s.PostfixConfig}
	} else {
		cfg.Releaser = &SMTPReleaser{Addr: s.ReleaseTo, Signer: sg}
		cfg.Hold = nil
	}
	q, err := New(cfg)
	if err != nil {
		if o.Index == nil {
			ix.Close()
		}
		return nil, err
	}
	svc := &Service{Settings: s, Q: q, Signer: sg, ownIndex: o.Index == nil}
	if s.Digest.Enabled {
		domains := s.Digest.LocalDomains
		if len(domains) == 0 {
			domains = local
		}
		svc.Digest = &Digest{Q: q, Signer: sg, BaseURL: s.Web.BaseURL, From: s.Digest.From, Addr: s.Digest.SMTP,
			Local: func(addr string) bool {
				d := strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
				for _, x := range domains {
					if strings.EqualFold(strings.TrimPrefix(x, "."), d) {
						return true
					}
				}
				return false
			}}
	}
	return svc, nil
}

// Options are what Open hands on to the service.
type Options struct {
	Logger   *slog.Logger
	Observer Observer
	// Index, when set, is an index opened by the caller (OpenIndex) and
	// kept across reloads: a bbolt file is locked by the process that has
	// it open, so a reload that changes other settings must not open it
	// again. The service does not close it.
	Index Index
}

// Close closes the index, unless the caller passed it in Options.
func (s *Service) Close() error {
	if !s.ownIndex {
		return nil
	}
	return s.Q.cfg.Index.Close()
}
