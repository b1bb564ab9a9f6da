package arc

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// DefaultHeaders are the fields our AMS signs when the message has them
// (RFC 6376 §5.4.1's list; never ARC-Seal, RFC 8617 §4.1.2).
var DefaultHeaders = []string{
	"from", "to", "cc", "subject", "date", "message-id", "reply-to",
	"in-reply-to", "references", "mime-version", "content-type",
	"content-transfer-encoding", "list-id", "list-post", "list-unsubscribe",
	"dkim-signature",
}

// ErrSealKey reports a Sealer without a usable key.
var ErrSealKey = errors.New("arc: sealer needs an RSA key, a domain and a selector")

// Sealer adds our ARC set to messages we forward.
type Sealer struct {
	Domain   string        // d= of AMS and AS
	Selector string        // s=
	Key      crypto.Signer // an RSA key (*rsa.PrivateKey)
	// Headers is the AMS h= list, used as given (a name listed twice
	// signs two instances, a name the message lacks is signed as absent).
	// When nil, DefaultHeaders, each as many times as the message has
	// the field.
	Headers []string
}

// Seal computes the ARC set of instance N+1 for a message whose chain
// was checked by Verify (chain; nil means no ARC fields). authResults is
// the payload of our AAR: our authserv-id and results, as in our
// Authentication-Results ("mx.example.org; spf=pass ...; arc=pass").
// h and body are the message as it will leave us. The result is the
// three fields to insert at the top of the header, in this order:
// ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results. Values
// are folded with a bare LF and a tab, as milters pass them.
//
// A chain whose newest seal says cv=fail gets no new set
// (ErrChainFailed), nor does one with 50 sets (ErrTooManySets); a chain
// whose status is temperror cannot be sealed either (no cv= to state).
func (s *Sealer) Seal(h []Field, body io.Reader, chain *Verification, authResults string, now time.Time) ([]Field, error) {
	algo, err := s.algorithm()
	if err != nil {
		return nil, err
	}
	cv, prior, err := sealState(h, chain)
	if err != nil {
		return nil, err
	}
	i := len(prior)/3 + 1
	if chain != nil && chain.Highest >= i {
		i = chain.Highest + 1
	}
	if i > MaxSets {
		return nil, ErrTooManySets
	}
	inst := strconv.Itoa(i)
	ts := strconv.FormatInt(now.Unix(), 10)

	aar := Field{Name: HeaderAuthResults, Value: " i=" + inst + "; " + strings.TrimSpace(authResults)}

	// The AMS: a DKIM signature, relaxed/relaxed (RFC 8617 §4.1.2).
	bh := sha256.New()
	bc := newBodyCanon(CanonRelaxed, bh, -1)
	if body != nil {
		if _, err := io.Copy(bc, body); err != nil {
			return nil, fmt.Errorf("arc: reading the body: %w", err)
		}
	}
	if err := bc.Close(); err != nil {
		return nil, err
	}
	names := s.signedNames(h)
	ams := []string{
		"a=" + algo, "b=", "bh=" + base64.StdEncoding.EncodeToString(bh.Sum(nil)),
		"c=relaxed/relaxed", "d=" + s.Domain, "h=" + strings.Join(names, ":"),
		"i=" + inst, "s=" + s.Selector, "t=" + ts,
	}
	all := append(h[:len(h):len(h)], Field{Name: HeaderSignature, Value: " " + strings.Join(ams, "; ")})
	b, err := s.sign(signatureHash(all, &sig{field: len(h), headers: names, hc: CanonRelaxed}))
	if err != nil {
		return nil, err
	}
	ams[1] = "b=" + b
	amsField := Field{Name: HeaderSignature, Value: " " + fold(ams)}

	// The AS over every set up to ours (RFC 8617 §5.1.1).
	as := []string{"a=" + algo, "b=", "cv=" + string(cv), "d=" + s.Domain, "i=" + inst, "s=" + s.Selector, "t=" + ts}
	d := sha256.New()
	for _, f := range append(prior, aar, amsField) {
		io.WriteString(d, canonHeader(CanonRelaxed, f.Name, f.Value))
	}
	io.WriteString(d, strings.TrimSuffix(canonHeader(CanonRelaxed, HeaderSeal, " "+strings.Join(as, "; ")), "\r\n"))
	if as[1], err = s.sign(d.Sum(nil)); err != nil {
		return nil, err
	}
	as[1] = "b=" + as[1]
	return []Field{{Name: HeaderSeal, Value: " " + fold(as)}, amsField, aar}, nil
}

// sealState decides the cv= of our seal and the fields of the earlier
// sets our seal covers (AAR, AMS, AS of each instance in order).
func sealState(h []Field, chain *Verification) (ChainStatus, []Field, error) {
	if chain == nil || chain.Result == ResultNone {
		return CVNone, nil, nil
	}
	switch chain.Result {
	case ResultTempError:
		return "", nil, fmt.Errorf("arc: chain status unknown: %w", chain.Err)
	case ResultFail:
		if errors.Is(chain.Err, ErrChainFailed) {
			return "", nil, ErrChainFailed
		}
	}
	if chain.Result == ResultFail {
		// Our seal of a failed chain covers only our own set: the
		// earlier ones are what failed.
		return CVFail, nil, nil
	}
	c, err := collect(h)
	if err != nil || c == nil {
		return "", nil, fmt.Errorf("arc: the chain verified but does not parse: %v", err)
	}
	var prior []Field
	for k := range c.ass {
		prior = append(prior, h[c.aars[k].field], h[c.amss[k].field], h[c.ass[k].field])
	}
	return CVPass, prior, nil
}

// signedNames lists the AMS h= names: each configured name as many times
// as the message has the field.
func (s *Sealer) signedNames(h []Field) []string {
	if s.Headers != nil {
		return s.Headers
	}
	var names []string
	for _, n := range DefaultHeaders {
		for _, f := range h {
			if strings.EqualFold(strings.TrimRight(f.Name, " \t"), n) {
				names = append(names, strings.ToLower(n))
			}
		}
	}
	return names
}

func (s *Sealer) algorithm() (string, error) {
	if s == nil || s.Key == nil || !validDomain(s.Domain) || !validDomain(s.Selector) {
		return "", ErrSealKey
	}
	// We seal with RSA only: ARC verifiers in use (dkimpy's arc_verify
	// among them) know no other algorithm, and a seal they cannot check
	// fails the chain. Ed25519 seals of others are verified.
	if _, ok := s.Key.Public().(*rsa.PublicKey); !ok {
		return "", ErrSealKey
	}
	return "rsa-sha256", nil
}

func (s *Sealer) sign(hashed []byte) (string, error) {
	b, err := s.Key.Sign(rand.Reader, hashed, crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("arc: signing: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// fold joins tags with "; ", breaking the line after a ";" when the next
// tag would pass 78 columns; relaxed canonicalization reads the break back
// as the same single space.
//
// QUIRK(dkimpy): the fold is LF and a space, not a tab: dkimpy finds the
// AMS of an instance by searching " i=N;" in its raw value.
func fold(tags []string) string {
	var b strings.Builder
	col := len(HeaderSignature) + 2
	for i, t := range tags {
		if i > 0 {
			if col+len(t)+2 > 78 {
				b.WriteString(";\n ")
				col = 1
			} else {
				b.WriteString("; ")
				col += 2
			}
		}
		b.WriteString(t)
		col += len(t)
	}
	return b.String()
}
