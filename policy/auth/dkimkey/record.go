package dkimkey

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
)

// KeyType is the k= tag of a key record (RFC 6376 §3.6.1, RFC 8463).
type KeyType string

// Key types.
const (
	KeyRSA     KeyType = "rsa"
	KeyEd25519 KeyType = "ed25519"
)

// Errors of key records. A *LookupError wraps them with the name queried.
var (
	// ErrNoRecord: the name has no TXT record (NXDOMAIN or NODATA).
	ErrNoRecord = errors.New("dkimkey: no key record")
	// ErrSyntax: the record is not a valid DKIM key record.
	ErrSyntax = errors.New("dkimkey: bad key record")
	// ErrRevoked: p= is empty (RFC 6376 §3.6.1: the key was revoked).
	ErrRevoked = errors.New("dkimkey: key revoked")
	// ErrKeyType: k= names a key type this package does not know.
	ErrKeyType = errors.New("dkimkey: unknown key type")
)

// Record is a parsed DKIM public key record.
type Record struct {
	KeyType   KeyType
	PublicKey crypto.PublicKey // *rsa.PublicKey or ed25519.PublicKey
	P         string           // p= with white space removed (base64)
	Hashes    []string         // h=, nil when absent (every hash allowed)
	Services  []string         // s=, ["*"] when absent
	Flags     []string         // t=
}

// Testing reports the t=y flag (RFC 6376 §3.6.1: the domain is testing DKIM).
func (r *Record) Testing() bool { return hasItem(r.Flags, "y") }

// AllowsHash reports whether the record's h= allows hash h ("sha256").
func (r *Record) AllowsHash(h string) bool { return r.Hashes == nil || hasItem(r.Hashes, h) }

// AllowsEmail reports whether the record's s= allows use for email.
func (r *Record) AllowsEmail() bool { return hasItem(r.Services, "*") || hasItem(r.Services, "email") }

// RSABits returns the modulus size of an RSA key, 0 for other keys.
func (r *Record) RSABits() int {
	if k, ok := r.PublicKey.(*rsa.PublicKey); ok {
		return k.N.BitLen()
	}
	return 0
}

// ParseRecord parses the TXT value of a key record (its strings already
// concatenated, RFC 6376 §3.6.2.2).
func ParseRecord(txt string) (*Record, error) {
	tags, err := ParseTags(txt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	// RFC 6376 §3.6.1: v= is optional; a record with another value
	// MUST be discarded.
	// QUIRK(dkim): v= "MUST be the first tag", but published records with
	// it later exist and common verifiers accept them; so do we.
	if v, ok := tags.Get("v"); ok && v != "DKIM1" {
		return nil, fmt.Errorf("%w: v=%q", ErrSyntax, v)
	}
	rec := &Record{KeyType: KeyRSA, Services: []string{"*"}}
	if k, ok := tags.Get("k"); ok {
		rec.KeyType = KeyType(k)
	}
	if h, ok := tags.Get("h"); ok {
		rec.Hashes = splitList(h)
	}
	if s, ok := tags.Get("s"); ok {
		rec.Services = splitList(s)
	}
	if t, ok := tags.Get("t"); ok {
		rec.Flags = splitList(t)
	}
	p, ok := tags.Get("p")
	if !ok {
		return nil, fmt.Errorf("%w: no p=", ErrSyntax)
	}
	rec.P = StripFWS(p)
	if rec.P == "" {
		return nil, ErrRevoked
	}
	der, err := base64.StdEncoding.DecodeString(rec.P)
	if err != nil {
		return nil, fmt.Errorf("%w: p= is not base64", ErrSyntax)
	}
	switch rec.KeyType {
	case KeyRSA:
		pub, err := parseRSA(der)
		if err != nil {
			return nil, err
		}
		rec.PublicKey = pub
	case KeyEd25519:
		// RFC 8463 §4.2: the raw 32-byte public key.
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: ed25519 key of %d bytes", ErrSyntax, len(der))
		}
		rec.PublicKey = ed25519.PublicKey(der)
	default:
		return nil, fmt.Errorf("%w: k=%q", ErrKeyType, rec.KeyType)
	}
	return rec, nil
}

// parseRSA accepts a SubjectPublicKeyInfo (RFC 6376 §3.6.1) and, as many
// verifiers do, a bare PKCS#1 RSAPublicKey.
func parseRSA(der []byte) (*rsa.PublicKey, error) {
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: p= is not an RSA key", ErrSyntax)
		}
		return k, nil
	}
	// QUIRK(dkim): some domains publish the PKCS#1 form.
	k, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: p= is not an RSA public key", ErrSyntax)
	}
	return k, nil
}

// EncodePublic returns the p= value for a public key: base64 of the
// SubjectPublicKeyInfo for RSA, of the raw key for Ed25519 (RFC 8463 §4.2).
func EncodePublic(pub crypto.PublicKey) (KeyType, string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", "", err
		}
		return KeyRSA, base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return KeyEd25519, base64.StdEncoding.EncodeToString(k), nil
	}
	return "", "", fmt.Errorf("%w: %T", ErrKeyType, pub)
}

// SameKey reports whether two public keys are equal.
func SameKey(a, b crypto.PublicKey) bool {
	switch k := a.(type) {
	case *rsa.PublicKey:
		return k.Equal(b)
	case ed25519.PublicKey:
		return k.Equal(b)
	}
	return false
}

// Resolver is the one DNS query the package needs. Errors should be
// *net.DNSError values (or implement Temporary() bool) so that a
// temporary failure can be told from a missing record.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// LookupError is a failed key lookup.
type LookupError struct {
	Name      string // the name queried
	Temporary bool   // a DNS failure worth retrying (temperror), not a missing or bad record
	Err       error
}

func (e *LookupError) Error() string {
	if e.Temporary {
		return fmt.Sprintf("dkimkey: temporary failure looking up %s: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("dkimkey: %s: %v", e.Name, e.Err)
}

func (e *LookupError) Unwrap() error { return e.Err }

// IsTemporary reports whether err is a temporary key lookup failure.
func IsTemporary(err error) bool {
	var le *LookupError
	return errors.As(err, &le) && le.Temporary
}

// RecordName returns selector._domainkey.domain (RFC 6376 §3.6.2.1).
func RecordName(selector, domain string) string {
	return selector + "._domainkey." + strings.TrimSuffix(domain, ".")
}

// Lookup fetches and parses the key record of selector and domain. When
// the name has several TXT records the first valid one is used.
func Lookup(ctx context.Context, r Resolver, selector, domain string) (*Record, error) {
	name := RecordName(selector, domain)
	txts, err := r.LookupTXT(ctx, name)
	if err != nil {
		if temporary(err) {
			return nil, &LookupError{Name: name, Temporary: true, Err: err}
		}
		return nil, &LookupError{Name: name, Err: fmt.Errorf("%w: %v", ErrNoRecord, err)}
	}
	if len(txts) == 0 {
		return nil, &LookupError{Name: name, Err: ErrNoRecord}
	}
	var first error
	for _, t := range txts {
		rec, err := ParseRecord(t)
		if err == nil {
			return rec, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, &LookupError{Name: name, Err: first}
}

func temporary(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return !de.IsNotFound && (de.IsTemporary || de.IsTimeout)
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func splitList(s string) []string {
	parts := strings.Split(s, ":")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func hasItem(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
