package sign

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
)

// Algo is a key algorithm for GenerateKey.
type Algo string

// Key algorithms.
const (
	AlgoRSA2048 Algo = "rsa2048"
	AlgoRSA3072 Algo = "rsa3072"
	AlgoEd25519 Algo = "ed25519"
)

// GenerateKey makes a new private key.
func GenerateKey(a Algo) (crypto.Signer, error) {
	switch a {
	case AlgoRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case AlgoRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case AlgoEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("sign: unknown algorithm %q (rsa2048, rsa3072, ed25519)", a)
}

// WriteKey writes a private key as PKCS#8 PEM to a new file of mode
// 0600; it never overwrites an existing file.
func WriteKey(path string, k crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// TXTRecord returns the key record to publish for a public key
// (RFC 6376 §3.6.1, RFC 8463 §4.2).
func TXTRecord(pub crypto.PublicKey) (string, error) {
	kt, p, err := dkimkey.EncodePublic(pub)
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=" + string(kt) + "; p=" + p, nil
}

// SplitTXT splits a TXT value into character-strings of at most 255
// bytes (RFC 1035 §3.3.14), which resolvers concatenate (RFC 6376
// §3.6.2.2).
func SplitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// ZoneRecord returns a zone file line for the key: the name, then the
// TXT value as quoted strings of at most 255 bytes.
func ZoneRecord(selector, domain string, pub crypto.PublicKey) (string, error) {
	txt, err := TXTRecord(pub)
	if err != nil {
		return "", err
	}
	parts := SplitTXT(txt)
	for i, p := range parts {
		parts[i] = `"` + p + `"`
	}
	return dkimkey.RecordName(selector, domain) + ". IN TXT ( " + strings.Join(parts, " ") + " )", nil
}

// RecordState is what DNS says about a key.
type RecordState string

// Record states.
const (
	RecordOK        RecordState = "ok"        // the published p= is our public key
	RecordMissing   RecordState = "missing"   // no record, or a revoked one (p=)
	RecordMismatch  RecordState = "mismatch"  // a record with another key, or a broken one
	RecordTempError RecordState = "temperror" // DNS did not answer; try again later
	RecordUnchecked RecordState = "unchecked" // not checked yet
)

// Check compares a key with its published record.
func Check(ctx context.Context, r dkimkey.Resolver, k *Key) (RecordState, error) {
	rec, err := dkimkey.Lookup(ctx, r, k.Selector, k.Domain)
	switch {
	case err == nil:
	case dkimkey.IsTemporary(err):
		return RecordTempError, err
	case errors.Is(err, dkimkey.ErrNoRecord), errors.Is(err, dkimkey.ErrRevoked):
		return RecordMissing, err
	default:
		return RecordMismatch, err
	}
	if !dkimkey.SameKey(rec.PublicKey, k.Signer.Public()) {
		return RecordMismatch, fmt.Errorf("sign: %s publishes another key", dkimkey.RecordName(k.Selector, k.Domain))
	}
	if !rec.AllowsHash("sha256") || !rec.AllowsEmail() {
		return RecordMismatch, fmt.Errorf("sign: %s excludes sha256 or email (h= or s=)", dkimkey.RecordName(k.Selector, k.Domain))
	}
	return RecordOK, nil
}

// CheckInterval is how often the daemon re-checks the records.
const CheckInterval = 10 * time.Minute

// KeyState is the last check of one key.
type KeyState struct {
	State   RecordState
	Checked time.Time
	Err     error
	// Usable: the key signs. It becomes true on ok and false on missing
	// or mismatch; a temporary DNS failure keeps what it was.
	Usable bool
}

// Tracker remembers the record state of each key, so that a key signs
// only while its published record matches. It is safe for concurrent use.
type Tracker struct {
	mu     sync.Mutex
	states map[string]KeyState
	last   time.Time
}

// NewTracker returns a tracker with every key unchecked (not usable).
func NewTracker() *Tracker { return &Tracker{states: map[string]KeyState{}} }

// CheckAll checks every key at time now (at start, after a reload and
// when Due).
func (tr *Tracker) CheckAll(ctx context.Context, r dkimkey.Resolver, keys []*Key, now time.Time) {
	type res struct {
		k   *Key
		st  RecordState
		err error
	}
	out := make([]res, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := Check(ctx, r, k)
			out[i] = res{k, st, err}
		}()
	}
	wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	seen := map[string]bool{}
	for _, x := range out {
		prev := tr.states[x.k.Name]
		usable := x.st == RecordOK || (x.st == RecordTempError && prev.Usable)
		tr.states[x.k.Name] = KeyState{State: x.st, Checked: now, Err: x.err, Usable: usable}
		seen[x.k.Name] = true
	}
	for name := range tr.states {
		if !seen[name] {
			delete(tr.states, name) // a key removed by a reload
		}
	}
	tr.last = now
}

// Due reports whether CheckInterval has passed since the last CheckAll.
func (tr *Tracker) Due(now time.Time) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.last.IsZero() || now.Sub(tr.last) >= CheckInterval
}

// Usable reports whether the key may sign now; it has the shape
// Table.Select wants.
func (tr *Tracker) Usable(k *Key) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.states[k.Name].Usable
}

// State returns the last check of a key (State "unchecked" if none).
func (tr *Tracker) State(name string) KeyState {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s, ok := tr.states[name]
	if !ok {
		return KeyState{State: RecordUnchecked}
	}
	return s
}
