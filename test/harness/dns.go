package harness

import (
	"fmt"
	"testing"

	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

// DNS is a test DNS server (policy/dns/dnstest) for end-to-end tests: it
// answers like a real recursive resolver (SOA on negative answers, RA set)
// and can be told to SERVFAIL or time out per name.
type DNS = dnstest.Server

// StartDNS starts a test DNS server on 127.0.0.1 with the given records in
// zone-file syntax ("name [ttl] [IN] TYPE rdata"); it stops when t ends.
func StartDNS(t testing.TB, records ...string) *DNS {
	t.Helper()
	return dnstest.Start(t, records...)
}

// DNSSection is the [dns] section that points mailwarden at s, with a short
// timeout so that tests of DNS failures finish quickly.
func DNSSection(s *DNS) string {
	return fmt.Sprintf("[dns]\nservers = [%q]\ntimeout = \"500ms\"\nattempts = 1\n", s.Addr)
}
