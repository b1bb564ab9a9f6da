package spam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// Resolver is the part of a DNS resolver the DNS lists need: the shared,
// caching resolver of policy/dns implements it. A missing name is a
// *net.DNSError with IsNotFound.
type Resolver interface {
	LookupA(ctx context.Context, name string) ([]netip.Addr, error)
}

// Zone is one DNS list: [[spam.dnsbl]] for the client address (RFC 5782
// §2.1), [[spam.uribl]] for the domains of URLs in the body (RFC 5782 §2.3).
type Zone struct {
	Zone   string  `toml:"zone"`
	Weight float64 `toml:"weight"`
	// Answers restricts which A records count as "listed" (some lists
	// return different codes per sub-list). Empty: any 127.0.0.0/8 answer
	// except 127.255.255.0/24, which Spamhaus and others use for "query
	// refused" (an open resolver, over quota) and must not count.
	Answers []string `toml:"answers"`
}

func (z Zone) signal(kind string) string { return kind + "-" + strings.TrimSuffix(z.Zone, ".") }

// listed reports whether an answer means "listed".
func (z Zone) listed(addrs []netip.Addr) bool {
	for _, a := range addrs {
		a = a.Unmap()
		if len(z.Answers) > 0 {
			for _, want := range z.Answers {
				if a.String() == want {
					return true
				}
			}
			continue
		}
		// RFC 5782 §2.1: listed entries have an A record in 127.0.0.0/8;
		// RFC 5782 §5 reserves 127.0.0.1 as never listed.
		b := a.As4()
		if a.Is4() && b[0] == 127 && a != netip.AddrFrom4([4]byte{127, 0, 0, 1}) && !(b[1] == 255 && b[2] == 255) {
			return true
		}
	}
	return false
}

// reverseIP builds the DNSBL query name of an address: RFC 5782 §2.1
// reverses the octets of IPv4 and §2.4 the nibbles of IPv6.
func reverseIP(a netip.Addr) string {
	a = a.Unmap()
	var b strings.Builder
	if a.Is4() {
		o := a.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d", o[3], o[2], o[1], o[0])
		return b.String()
	}
	const hex = "0123456789abcdef"
	o := a.As16()
	for i := 15; i >= 0; i-- {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteByte(hex[o[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[o[i]>>4])
	}
	return b.String()
}

// lookup is one DNS list query.
type lookup struct {
	name   string // signal name
	query  string
	zone   Zone
	listed bool
	err    error
}

// runLookups asks every query concurrently. NXDOMAIN is "not listed";
// other failures are reported in err (a DNS list that does not answer
// never makes a message spam, nor an error of the whole check).
func runLookups(ctx context.Context, r Resolver, ls []lookup) {
	var wg sync.WaitGroup
	for i := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &ls[i]
			addrs, err := r.LookupA(ctx, l.query)
			var de *net.DNSError
			switch {
			case err == nil:
				l.listed = l.zone.listed(addrs)
			case errors.As(err, &de) && de.IsNotFound:
			default:
				l.err = err
			}
		}()
	}
	wg.Wait()
}
