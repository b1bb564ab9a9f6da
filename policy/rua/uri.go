package rua

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Destination is one mailto: report URI of a rua= tag.
type Destination struct {
	Addr    string // the mailbox, as written (local part case kept)
	Host    string // its domain, lower case
	MaxSize int64  // bytes; 0 means no limit
}

// ErrScheme says a report URI is not mailto: (the only scheme we send to).
var ErrScheme = errors.New("rua: only mailto: report URIs are supported")

// URIError is a report URI that cannot be used.
type URIError struct {
	URI string
	Msg string
}

func (e *URIError) Error() string { return fmt.Sprintf("rua: report URI %q: %s", e.URI, e.Msg) }

// ParseURI parses one DMARC report URI (RFC 7489 §6.2: a URI, optionally
// followed by "!" and a size with unit k, m, g or t, powers of 2^10).
func ParseURI(s string) (Destination, error) {
	s = strings.TrimSpace(s)
	u, size, hasSize := strings.Cut(s, "!")
	var d Destination
	if hasSize {
		n, err := parseSize(size)
		if err != nil {
			return d, &URIError{s, err.Error()}
		}
		d.MaxSize = n
	}
	scheme, rest, ok := strings.Cut(u, ":")
	if !ok || !strings.EqualFold(scheme, "mailto") {
		return d, fmt.Errorf("%w: %q", ErrScheme, s)
	}
	// RFC 6068: mailto:addr?hfields; header fields are ignored, the
	// address may be percent-encoded (RFC 7489 §6.2: "!" and "," in a URI
	// must be encoded).
	rest, _, _ = strings.Cut(rest, "?")
	addr, err := url.PathUnescape(rest)
	if err != nil {
		return d, &URIError{s, "bad percent-encoding"}
	}
	if strings.Contains(addr, ",") {
		return d, &URIError{s, "one mailbox per URI"}
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || strings.ContainsAny(addr, " \t\r\n<>\"") {
		return d, &URIError{s, "not a mailbox"}
	}
	d.Addr = addr
	d.Host = strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
	return d, nil
}

func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("bad size limit")
	}
	if n > (1<<62)/mult {
		return 1 << 62, nil
	}
	return n * mult, nil
}

// Resolver answers TXT queries. Errors follow the net package: a
// *net.DNSError with IsNotFound for NXDOMAIN/NODATA, IsTemporary or
// IsTimeout for failures worth retrying (policy/dns.Resolver and
// net.Resolver both qualify).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Authorization is the outcome of an external-destination check.
type Authorization string

const (
	Authorized   Authorization = "authorized"   // same organization or a v=DMARC1 record
	Unauthorized Authorization = "unauthorized" // no record: never send there
	TempError    Authorization = "temperror"    // DNS failure: try again later
)

// Verifier checks external report destinations (RFC 7489 §7.1).
type Verifier struct {
	Resolver Resolver
	// OrgDomain maps a domain to its organizational domain (RFC 7489
	// §3.2); the daemon passes policy/auth.OrgDomain. Nil uses the same
	// Public Suffix List rule (OrgDomain in this package).
	OrgDomain func(string) string
}

// Verify decides whether reports on policyDomain may go to dest's host.
// When the host publishes its own rua= in the verification record, the
// URIs of that record on the same host are returned: they replace dest
// (§7.1: "the overriding URI MUST use the same destination host").
func (v *Verifier) Verify(ctx context.Context, policyDomain string, dest Destination) (Authorization, []Destination, error) {
	org := v.OrgDomain
	if org == nil {
		org = OrgDomain
	}
	// RFC 7489 §7.1 step 2: same organizational domain, nothing to check.
	if o := org(policyDomain); o != "" && o == org(dest.Host) {
		return Authorized, nil, nil
	}
	// Step 3: "<target-domain>._report._dmarc.<destination-host>".
	name := strings.ToLower(strings.TrimSuffix(policyDomain, ".")) + "._report._dmarc." + dest.Host
	txts, err := v.Resolver.LookupTXT(ctx, name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return Unauthorized, nil, nil
		}
		if errors.As(err, &de) && !de.IsTemporary && !de.IsTimeout {
			return Unauthorized, nil, nil
		}
		return TempError, nil, fmt.Errorf("rua: verify %s: %w", name, err)
	}
	for _, t := range txts {
		// Step 4: records not starting with v=DMARC1 are discarded.
		k, val, ok := strings.Cut(strings.TrimSpace(strings.SplitN(t, ";", 2)[0]), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "v") || strings.TrimSpace(val) != "DMARC1" {
			continue
		}
		return Authorized, overrideRUA(t, dest), nil
	}
	return Unauthorized, nil, nil
}

// overrideRUA returns the mailto: URIs of a verification record's rua=
// that point at dest's host.
func overrideRUA(rec string, dest Destination) []Destination {
	var out []Destination
	for _, part := range strings.Split(rec, ";") {
		k, val, ok := strings.Cut(part, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "rua") {
			continue
		}
		for _, u := range strings.Split(val, ",") {
			d, err := ParseURI(u)
			if err == nil && d.Host == dest.Host {
				out = append(out, d)
			}
		}
	}
	return out
}
