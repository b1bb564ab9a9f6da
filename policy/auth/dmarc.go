package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// DMARC policies (RFC 7489 §6.3, tag p=).
type Policy string

const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// Alignment is an identifier alignment mode (RFC 7489 §3.1, tags adkim/aspf).
type Alignment string

const (
	AlignRelaxed Alignment = "r"
	AlignStrict  Alignment = "s"
)

// Record is a parsed DMARC policy record (RFC 7489 §6.3).
type Record struct {
	Policy          Policy
	SubdomainPolicy Policy // "" when sp= is absent: p applies (§6.3)
	ADKIM, ASPF     Alignment
	Percent         int // 0..100
	RUA, RUF        []string
}

// ErrNoPolicy says a TXT record is not a DMARC record at all (discarded by
// RFC 7489 §6.6.3 step 4), as opposed to a DMARC record with bad tags.
var ErrNoPolicy = errors.New("auth: not a DMARC record")

// RecordError is a syntax error in a DMARC record: a permanent error.
type RecordError struct{ Msg string }

func (e *RecordError) Error() string { return "auth: dmarc record: " + e.Msg }

// ParseRecord parses a DMARC record as leniently as RFC 7489 allows: tag
// names are case-insensitive (§6.4: "tag names ... are case-insensitive"
// in practice: mail in the wild uses "P=Reject"), unknown tags are ignored
// (§6.3: "Unknown tags MUST be ignored"), white space around tags and
// values is ignored, a trailing ";" is allowed. v=DMARC1 must come first
// (§6.4). An invalid p= is an error unless rua= is present (§6.6.3:
// treated as p=none); an invalid value of another known tag falls back to
// its default.
func ParseRecord(txt string) (*Record, error) {
	if len(txt) > 16384 {
		return nil, &RecordError{"record too long"}
	}
	parts := strings.Split(txt, ";")
	first := strings.TrimSpace(parts[0])
	k, v, ok := strings.Cut(first, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(k), "v") || strings.TrimSpace(v) != "DMARC1" {
		return nil, ErrNoPolicy
	}
	r := &Record{ADKIM: AlignRelaxed, ASPF: AlignRelaxed, Percent: 100}
	var pSeen, pBad bool
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue // not a tag: ignored like an unknown one
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		switch k {
		case "p":
			pSeen = true
			if pol, ok := parsePolicy(v); ok {
				r.Policy = pol
			} else {
				pBad = true
			}
		case "sp":
			if pol, ok := parsePolicy(v); ok {
				r.SubdomainPolicy = pol
			}
		case "adkim":
			if a, ok := parseAlign(v); ok {
				r.ADKIM = a
			}
		case "aspf":
			if a, ok := parseAlign(v); ok {
				r.ASPF = a
			}
		case "pct":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 100 {
				r.Percent = n
			}
		case "rua":
			r.RUA = splitURIs(v)
		case "ruf":
			r.RUF = splitURIs(v)
		}
	}
	if !pSeen || pBad {
		// RFC 7489 §6.6.3 step 6: "If a retrieved policy record does not
		// contain a valid "p" tag, or contains an "sp" tag that is not
		// valid, then: if a "rua" tag is present and contains at least one
		// syntactically valid reporting URI, the Mail Receiver SHOULD act
		// as if a record containing a valid "v" tag and "p=none" was
		// retrieved. Otherwise, ... apply no DMARC processing."
		if len(r.RUA) > 0 {
			r.Policy = PolicyNone
			return r, nil
		}
		if !pSeen {
			return nil, &RecordError{"missing p= tag"}
		}
		return nil, &RecordError{"invalid p= value"}
	}
	return r, nil
}

func parsePolicy(v string) (Policy, bool) {
	switch strings.ToLower(v) {
	case "none":
		return PolicyNone, true
	case "quarantine":
		return PolicyQuarantine, true
	case "reject":
		return PolicyReject, true
	}
	return "", false
}

func parseAlign(v string) (Alignment, bool) {
	switch strings.ToLower(v) {
	case "r":
		return AlignRelaxed, true
	case "s":
		return AlignStrict, true
	}
	return "", false
}

func splitURIs(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ",") {
		if u = strings.TrimSpace(u); u != "" && strings.Contains(u, ":") {
			out = append(out, u)
		}
	}
	return out
}

// NormalizeDomain lower-cases a domain, drops a trailing dot and converts
// U-labels to A-labels (RFC 5890), so that domains compare as strings.
// It returns "" for something that is not a domain.
func NormalizeDomain(d string) string {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if d == "" || len(d) > 1024 {
		return ""
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		// Lenient: keep an ASCII name that IDNA's strict rules refuse
		// (underscores, for instance), refuse anything else.
		for _, c := range []byte(d) {
			if c >= 0x80 || c <= ' ' || c == '@' || c == '"' || c == '\\' {
				return ""
			}
		}
		a = d
	}
	a = strings.ToLower(a)
	if a == "" || strings.HasPrefix(a, ".") || strings.Contains(a, "..") || len(a) > 253 {
		return ""
	}
	return a
}

// OrgDomain returns the Organizational Domain of a normalised domain (RFC
// 7489 §3.2): the public suffix (Public Suffix List, ICANN and private
// sections) plus one label. A domain that is itself a public suffix is its
// own organizational domain.
func OrgDomain(d string) string {
	d = NormalizeDomain(d)
	if d == "" {
		return ""
	}
	if r := RegistrableDomain(d); r != "" {
		return r
	}
	return d
}

// RegistrableDomain is the public suffix of d plus one label (RFC 7489
// §3.2 steps 1-3), or "" when d is itself a public suffix or not a domain.
func RegistrableDomain(d string) string {
	d = NormalizeDomain(d)
	if d == "" {
		return ""
	}
	// RFC 7489 §3.2 step 3: the longest public suffix, via the PSL.
	e, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return ""
	}
	return e
}

// Aligned reports whether an authenticated domain is aligned with the From
// domain under a mode (RFC 7489 §3.1.1, §3.1.2): identical for strict,
// the same organizational domain for relaxed.
func Aligned(authDomain, fromDomain string, mode Alignment) bool {
	a, f := NormalizeDomain(authDomain), NormalizeDomain(fromDomain)
	if a == "" || f == "" {
		return false
	}
	if a == f {
		return true
	}
	if mode == AlignStrict {
		return false
	}
	return OrgDomain(a) == OrgDomain(f)
}

// TXTLookup fetches TXT records; errors follow policy/dns (IsNotFound,
// IsTemporary).
type TXTLookup func(ctx context.Context, name string) ([]string, error)

// Discovery is the outcome of policy discovery for one From domain.
type Discovery struct {
	Record   *Record
	Domain   string // where the record was found
	OrgLevel bool   // found at the organizational domain (sp= applies)
	Err      error  // temporary (DNS) or permanent (syntax) failure
	Temp     bool
}

// Discover finds the DMARC record for a From domain (RFC 7489 §6.6.3).
// With neither a record nor an error, the domain publishes no policy.
func Discover(ctx context.Context, lookup TXTLookup, temporary func(error) bool, fromDomain string) Discovery {
	from := NormalizeDomain(fromDomain)
	if from == "" {
		return Discovery{Err: &RecordError{"invalid From domain"}}
	}
	org := OrgDomain(from)
	// Ask both names at once when they differ: the second answer is needed
	// whenever the first is empty, and a cache makes the extra query cheap.
	type res struct {
		txts []string
		err  error
	}
	var orgCh chan res
	if org != from {
		orgCh = make(chan res, 1)
		go func() {
			t, err := lookup(ctx, "_dmarc."+org)
			orgCh <- res{t, err}
		}()
	}
	// RFC 7489 §6.6.3 step 1: the From domain itself.
	txts, err := lookup(ctx, "_dmarc."+from)
	d := pick(txts, err, temporary)
	d.Domain = from
	if d.Record != nil || d.Err != nil || (orgCh == nil && !d.multi) {
		return d.Discovery
	}
	if d.multi {
		// Step 6: several records: no DMARC processing.
		return Discovery{Domain: from}
	}
	// Step 3/5: no record at the From domain: the organizational domain.
	r := <-orgCh
	d = pick(r.txts, r.err, temporary)
	d.Domain, d.OrgLevel = org, true
	if d.multi {
		return Discovery{Domain: org, OrgLevel: true}
	}
	return d.Discovery
}

type picked struct {
	Discovery
	multi bool
}

func pick(txts []string, err error, temporary func(error) bool) picked {
	if err != nil {
		if temporary(err) {
			// RFC 7489 §6.6.3: a DNS failure is a temperror.
			return picked{Discovery: Discovery{Err: fmt.Errorf("auth: dmarc lookup: %w", err), Temp: true}}
		}
		return picked{} // NXDOMAIN/NODATA: no record
	}
	var recs []*Record
	var perr error
	for _, t := range txts {
		// Step 4: discard records that do not start with v=DMARC1.
		r, err := ParseRecord(t)
		if errors.Is(err, ErrNoPolicy) {
			continue
		}
		if err != nil {
			perr = err
			continue
		}
		recs = append(recs, r)
	}
	switch {
	case len(recs) == 1 && perr == nil:
		return picked{Discovery: Discovery{Record: recs[0]}}
	case len(recs)+btoi(perr != nil) > 1:
		return picked{multi: true}
	case perr != nil:
		return picked{Discovery: Discovery{Err: perr}}
	}
	return picked{}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
