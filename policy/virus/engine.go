package virus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/clamav"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/virus/icap"
	"github.com/mailwarden/mailwarden/policy/virus/sssp"
)

// EngineType is the protocol of a [[virus.engine]].
type EngineType string

const (
	EngineClamd EngineType = "clamd" // clamd INSTREAM (package clamav)
	EngineICAP  EngineType = "icap"  // ICAP RESPMOD, RFC 3507 (package icap)
	EngineSSSP  EngineType = "sssp"  // Sophos SSSP/1.0 (package sssp)
)

func (t *EngineType) UnmarshalText(b []byte) error {
	switch v := EngineType(strings.ToLower(strings.TrimSpace(string(b)))); v {
	case EngineClamd, EngineICAP, EngineSSSP:
		*t = v
		return nil
	}
	return fmt.Errorf("virus: engine type %q: want \"clamd\", \"icap\" or \"sssp\"", b)
}

// Engine is one [[virus.engine]]: an anti-virus engine that scans every
// message. Its addresses are copies of one engine (round-robin with
// failover).
type Engine struct {
	Type EngineType `toml:"type"`
	// Name appears in X-Virus-Scanned, the log and the metrics as
	// "<type>:<name>"; default: the type and its position.
	Name      string   `toml:"name"`
	Addresses []string `toml:"addresses"`
	// Timeout bounds this engine's scan; 0 means [virus] timeout (which
	// bounds the whole check in any case).
	Timeout policy.Duration `toml:"timeout"`
	// MaxSize: a larger message is not sent and is "unscanned
	// (oversize)" for this engine. For clamd it must not exceed
	// clamd.conf's StreamMaxLength, for ICAP the server's own limit
	// (c-icap's MaxObjectSize). Default 25 MB.
	MaxSize        policy.Size     `toml:"max_size"`
	ConnectTimeout policy.Duration `toml:"connect_timeout"`
	// MaxConnections caps concurrent connections (icap: lowered further
	// by the server's Max-Connections; sssp). Default 16.
	MaxConnections int `toml:"max_connections"`
	// Preview (icap) sends the first bytes first when the server asks
	// for a preview (RFC 3507 §4.5); default true.
	Preview *bool `toml:"preview"`
	// ThreatHeaders (icap) are vendor fields naming a threat, beyond
	// X-Infection-Found, X-Violations-Found, X-Virus-ID, X-Virus-Name.
	ThreatHeaders []string `toml:"threat_headers"`

	clamd  []clamav.Server
	icap   []icap.Server
	sssp   []sssp.Server
	legacy bool // a [[clamav.server]] group
}

// ScannerName is "<type>:<name>" ("clamav:<name>" for a [[clamav.server]]
// group, as before [[virus.engine]]).
func (e *Engine) ScannerName() string {
	if e.legacy {
		return "clamav:" + e.Name
	}
	return string(e.Type) + ":" + e.Name
}

// DefaultMaxSize is an engine's max_size when none is given: Debian's
// clamd StreamMaxLength.
const DefaultMaxSize = DefaultStreamMaxLength

// validateEngines checks [[virus.engine]] and fills in defaults.
func (c *Config) validateEngines() error {
	var errs []error
	names := map[string]bool{}
	for i := range c.Engines {
		e := &c.Engines[i]
		key := fmt.Sprintf("engine[%d]", i+1)
		if e.Type == "" {
			errs = append(errs, policy.KeyErr(key+".type", "missing: \"clamd\", \"icap\" or \"sssp\""))
			continue
		}
		if e.Name == "" {
			e.Name = fmt.Sprintf("%s%d", e.Type, i+1)
		}
		if names[e.ScannerName()] {
			errs = append(errs, policy.KeyErr(key+".name", "duplicate engine %q", e.ScannerName()))
		}
		names[e.ScannerName()] = true
		if len(e.Addresses) == 0 {
			if e.Type != EngineClamd {
				errs = append(errs, policy.KeyErr(key+".addresses", "missing"))
			}
			e.Addresses = []string{DefaultAddress}
		}
		if e.MaxSize == 0 {
			e.MaxSize = DefaultMaxSize
		}
		if e.MaxSize < 0 {
			errs = append(errs, policy.KeyErr(key+".max_size", "must be positive"))
		}
		if e.Timeout < 0 || e.ConnectTimeout < 0 || e.MaxConnections < 0 {
			errs = append(errs, policy.KeyErr(key, "timeout, connect_timeout and max_connections must not be negative"))
		}
		if e.ConnectTimeout == 0 {
			e.ConnectTimeout = policy.Duration(5 * time.Second)
		}
		if e.Type != EngineICAP && (e.Preview != nil || len(e.ThreatHeaders) > 0) {
			errs = append(errs, policy.KeyErr(key, "preview and threat_headers are for type = \"icap\""))
		}
		e.clamd, e.icap, e.sssp = nil, nil, nil
		for _, a := range e.Addresses {
			var err error
			switch e.Type {
			case EngineClamd:
				var s clamav.Server
				if s, err = clamav.ParseServer(a); err == nil {
					e.clamd = append(e.clamd, s)
				}
			case EngineICAP:
				var s icap.Server
				if s, err = icap.ParseServer(a); err == nil {
					e.icap = append(e.icap, s)
				}
			case EngineSSSP:
				var s sssp.Server
				if s, err = sssp.ParseServer(a); err == nil {
					e.sssp = append(e.sssp, s)
				}
			}
			if err != nil {
				errs = append(errs, policy.KeyErr(key+".addresses", "%v", err))
			}
		}
	}
	if c.MinEngines < 0 {
		errs = append(errs, policy.KeyErr("min_engines", "must be at least 1"))
	}
	if c.MinEngines == 0 {
		c.MinEngines = 1
	}
	if len(c.Engines) > 0 && c.MinEngines > len(c.Engines) {
		errs = append(errs, policy.KeyErr("min_engines", "%d, but only %d [[virus.engine]]", c.MinEngines, len(c.Engines)))
	}
	return errors.Join(errs...)
}

// ErrBothForms is the configuration error for a file with both the old
// [[clamav.server]] groups and [[virus.engine]].
var ErrBothForms = errors.New(`virus: both [[clamav.server]] and [[virus.engine]] are set: move each [[clamav.server]] to a [[virus.engine]] with type = "clamd" (stream_max_length becomes max_size) and remove the [clamav] section`)

// engines returns the configured engines: [[virus.engine]], or else the
// [[clamav.server]] groups as clamd engines named "clamav:<group>" (the
// names they had), or else the default clamd group.
func (c *Config) engines(cc *ClamAVConfig) ([]Engine, error) {
	if len(c.Engines) > 0 {
		if cc != nil && len(cc.Servers) > 0 {
			return nil, ErrBothForms
		}
		for _, e := range c.Engines {
			if len(e.clamd)+len(e.icap)+len(e.sssp) != len(e.Addresses) {
				// Validate was not called (a config built in code).
				if err := c.Validate(); err != nil {
					return nil, err
				}
				break
			}
		}
		return c.Engines, nil
	}
	if cc == nil {
		cc = DefaultClamAVConfig()
	}
	groups, err := cc.groups()
	if err != nil {
		return nil, err
	}
	var out []Engine
	for _, g := range groups {
		out = append(out, Engine{Type: EngineClamd, Name: g.Name, Addresses: g.Addresses, MaxSize: g.StreamMaxLength, ConnectTimeout: g.ConnectTimeout, clamd: g.servers, legacy: true})
	}
	return out, nil
}

// CheckSections checks what one section cannot see alone: [[virus.engine]]
// beside [[clamav.server]] (ErrBothForms), min_engines above the number of
// engines. `mailwarden config check` runs it; building the services does
// the same checks.
func CheckSections(cfg *policy.Config) error {
	_, err := checkEngines(ConfigOf(cfg), ClamAVConfigOf(cfg))
	return err
}

func checkEngines(vc *Config, cc *ClamAVConfig) ([]Engine, error) {
	engines, err := vc.engines(cc)
	if err != nil {
		return nil, err
	}
	if vc.Require == RequireAny && vc.MinEngines > len(engines) {
		return nil, fmt.Errorf("virus: min_engines = %d, but %d engines", vc.MinEngines, len(engines))
	}
	return engines, nil
}
