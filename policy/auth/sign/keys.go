// Package sign adds DKIM signatures (RFC 6376) to the mail we send, with
// keys we manage: a key table and a signing table in the manner of
// OpenDKIM's KeyTable and SigningTable, key generation, and a check of
// each key against its published DNS record, so that a key only signs
// once receivers can verify it.
//
// Signatures are made with go-msgauth's dkim.Signer, relaxed/relaxed,
// rsa-sha256 (RFC 8301 §3.1: RSA keys of at least 1024 bits, we require
// 2048) and, only as an additional signature beside RSA,
// ed25519-sha256 (RFC 8463 §3: receivers that do not know it ignore it,
// RFC 6376 §6.1). The header fields signed follow RFC 6376 §5.4 and
// §8.15: From, To, Cc, Subject and Reply-To are "oversigned" (named one
// time more than present) so that no instance can be added; the others
// are signed only when present, since naming an absent Message-ID would
// break the signature the moment a later hop adds one. There is never an
// l= (RFC 6376 §8.2), t= is always set and x= a week later by default.
//
// The package imports nothing from the policy root: the daemon hands it
// the final header fields, the body and the time.
package sign

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// MinRSABits is the smallest RSA key we sign with (RFC 8301 §3.2 allows
// 1024; 2048 is what every current guide and large receiver expects).
const MinRSABits = 2048

// DefaultExpire is the x= distance from t= when none is configured.
const DefaultExpire = 7 * 24 * time.Hour

// Errors of the key and signing tables.
var (
	ErrUnknownKey  = errors.New("sign: rule names an unknown key")
	ErrKeyFile     = errors.New("sign: key file unreadable")
	ErrKeyMode     = errors.New("sign: key file is readable by others")
	ErrWeakKey     = errors.New("sign: RSA key shorter than 2048 bits")
	ErrKeyType     = errors.New("sign: key is neither RSA nor Ed25519")
	ErrKeyConfig   = errors.New("sign: bad key entry")
	ErrRuleSyntax  = errors.New("sign: bad rule pattern")
	ErrNoRSAForEd  = errors.New("sign: an Ed25519 key needs an RSA key in the same rule")
	ErrSignFailure = errors.New("sign: signing failed")
)

// KeyConfig is one [[dkim_sign.key]].
type KeyConfig struct {
	Name      string    `toml:"name"`
	Domain    string    `toml:"domain"`
	Selector  string    `toml:"selector"`
	File      string    `toml:"file"`       // PKCS#8 PEM (PKCS#1 RSA accepted, as opendkim-genkey writes it)
	NotBefore time.Time `toml:"not_before"` // zero: no start
	NotAfter  time.Time `toml:"not_after"`  // zero: no end
}

// RuleConfig is one [[dkim_sign.rule]]: From addresses matching From
// are signed with every key in Keys (several keys, several signatures).
type RuleConfig struct {
	From string   `toml:"from"` // "user@example.com", "*@example.com" or "*@.example.com" (subdomains)
	Keys []string `toml:"keys"`
}

// Config is the [dkim_sign] section.
type Config struct {
	Keys  []KeyConfig  `toml:"key"`
	Rules []RuleConfig `toml:"rule"`
	// Expire is x= minus t= (0: DefaultExpire).
	Expire time.Duration `toml:"expire"`
	// Ed25519 enables the Ed25519 keys of a rule (always beside an RSA
	// signature). Off by default: few receivers verify them yet.
	Ed25519 bool `toml:"ed25519"`
}

// Key is a loaded signing key.
type Key struct {
	Name      string
	Domain    string
	Selector  string
	Signer    crypto.Signer // *rsa.PrivateKey or ed25519.PrivateKey
	NotBefore time.Time
	NotAfter  time.Time
}

// Algorithm returns the a= of the key's signatures.
func (k *Key) Algorithm() string {
	if _, ok := k.Signer.Public().(ed25519.PublicKey); ok {
		return "ed25519-sha256"
	}
	return "rsa-sha256"
}

// Ed25519 reports whether the key is an Ed25519 key.
func (k *Key) Ed25519() bool { return k.Algorithm() == "ed25519-sha256" }

// ActiveAt reports whether now is inside [NotBefore, NotAfter).
func (k *Key) ActiveAt(now time.Time) bool {
	return (k.NotBefore.IsZero() || !now.Before(k.NotBefore)) && (k.NotAfter.IsZero() || now.Before(k.NotAfter))
}

// LoadKey reads a private key file: it must be a regular file that
// others cannot read, holding one PEM private key, RSA of at least
// MinRSABits or Ed25519.
func LoadKey(path string) (crypto.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	if st.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o (want 0600 or 0640)", ErrKeyMode, path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	return ParseKey(data)
}

// ParseKey parses a PEM private key (PKCS#8, or PKCS#1 for RSA).
func ParseKey(data []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrKeyFile)
	}
	var key any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key", ErrKeyFile, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("%w: %d bits", ErrWeakKey, k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrKeyType, key)
}

// Table is the loaded key and signing tables.
type Table struct {
	keys    map[string]*Key
	order   []*Key
	rules   []rule
	expire  time.Duration
	ed25519 bool
}

// NewTable loads every key file and checks every rule. load reads a key
// file (LoadKey when nil; tests pass their own).
func NewTable(cfg Config, load func(path string) (crypto.Signer, error)) (*Table, error) {
	if load == nil {
		load = LoadKey
	}
	t := &Table{keys: map[string]*Key{}, expire: cfg.Expire, ed25519: cfg.Ed25519}
	if t.expire <= 0 {
		t.expire = DefaultExpire
	}
	for _, kc := range cfg.Keys {
		if kc.Name == "" || kc.Domain == "" || kc.Selector == "" || kc.File == "" {
			return nil, fmt.Errorf("%w: key %q needs name, domain, selector and file", ErrKeyConfig, kc.Name)
		}
		if t.keys[kc.Name] != nil {
			return nil, fmt.Errorf("%w: key %q defined twice", ErrKeyConfig, kc.Name)
		}
		if !kc.NotAfter.IsZero() && !kc.NotAfter.After(kc.NotBefore) {
			return nil, fmt.Errorf("%w: key %q: not_after is not after not_before", ErrKeyConfig, kc.Name)
		}
		s, err := load(kc.File)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", kc.Name, err)
		}
		k := &Key{Name: kc.Name, Domain: strings.ToLower(strings.TrimSuffix(kc.Domain, ".")), Selector: kc.Selector,
			Signer: s, NotBefore: kc.NotBefore, NotAfter: kc.NotAfter}
		t.keys[k.Name] = k
		t.order = append(t.order, k)
	}
	for _, rc := range cfg.Rules {
		r, err := parseRule(rc.From)
		if err != nil {
			return nil, err
		}
		hasRSA, hasEd := false, false
		for _, name := range rc.Keys {
			k := t.keys[name]
			if k == nil {
				return nil, fmt.Errorf("%w: rule %q names %q", ErrUnknownKey, rc.From, name)
			}
			r.keys = append(r.keys, k)
			hasRSA = hasRSA || !k.Ed25519()
			hasEd = hasEd || k.Ed25519()
		}
		if len(r.keys) == 0 {
			return nil, fmt.Errorf("%w: rule %q has no keys", ErrKeyConfig, rc.From)
		}
		if hasEd && !hasRSA {
			return nil, fmt.Errorf("%w: rule %q", ErrNoRSAForEd, rc.From)
		}
		t.rules = append(t.rules, r)
	}
	return t, nil
}

// Keys returns every loaded key, in configuration order.
func (t *Table) Keys() []*Key { return t.order }

// Key returns the key named name, or nil.
func (t *Table) Key(name string) *Key { return t.keys[name] }

// Expire returns the x= distance.
func (t *Table) Expire() time.Duration { return t.expire }
