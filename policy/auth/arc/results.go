package arc

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// AuthResult returns our Authentication-Results entry for the chain:
// "arc=<result>", with header.oldest-pass when an older AMS no longer
// validates (RFC 8617 §5.2 step 6; absent means 0, all validate) and
// smtp.remote-ip when remoteIP is not empty.
//
// QUIRK(go-msgauth): authres.Format writes an *authres.ARCResult without
// its method name (v0.7.0), so this is a GenericResult.
func (v *Verification) AuthResult(remoteIP string) *authres.GenericResult {
	r := &authres.GenericResult{Method: "arc", Value: authres.ResultValue(v.Result), Params: map[string]string{}}
	if v.Result == ResultPass && v.OldestPass > 0 {
		r.Params["header.oldest-pass"] = strconv.Itoa(v.OldestPass)
	}
	if remoteIP != "" {
		r.Params["smtp.remote-ip"] = remoteIP
	}
	return r
}

// Trusted returns the sets of a passing chain sealed by trusted sealers,
// newest first, walking back from instance N while the sealer (the AS
// d=) is trusted; nil when the chain does not pass or its newest sealer
// is not trusted. A set sealed by an untrusted sealer ends the walk: what
// it says about older sets is not evidence.
func (v *Verification) Trusted(trusted func(sealer string) bool) []Set {
	if v.Result != ResultPass {
		return nil
	}
	var out []Set
	for i := len(v.Sets) - 1; i >= 0; i-- {
		if !trusted(strings.ToLower(v.Sets[i].Seal.Domain)) {
			break
		}
		out = append(out, v.Sets[i])
	}
	return out
}

// Results parses the AAR of the set: the results that sealer recorded
// (RFC 8617 §4.1.1: an Authentication-Results payload). Unknown methods
// come back as *authres.GenericResult; SPF, DKIM and DMARC as their types.
func (s Set) Results() ([]authres.Result, error) {
	_, rs, err := authres.Parse(s.AuthResults)
	return rs, err
}

// Evidence is an authentication pass for the From domain that a trusted
// sealer recorded in its AAR.
type Evidence struct {
	Instance int    // the set whose AAR shows it
	Sealer   string // its AS d=
	Method   string // "dmarc", "dkim" or "spf"
	Domain   string // header.from, header.d or the smtp.mailfrom domain
}

// AlignedPass looks through sets (Verification.Trusted's result) for a
// recorded result that would have made DMARC pass for fromDomain
// (RFC 7489 §4.2: an SPF or DKIM pass with an aligned domain, or the
// sealer's own dmarc=pass for that From domain). aligned(d, from) is the
// caller's identifier alignment test (relaxed or strict, RFC 7489 §3.1).
// This is evidence for a local policy override (RFC 7489 §7.2
// local_policy, RFC 8617 §7.2), never a pass by itself.
func AlignedPass(sets []Set, fromDomain string, aligned func(d, from string) bool) (Evidence, bool) {
	fromDomain = strings.ToLower(strings.TrimSuffix(fromDomain, "."))
	for _, s := range sets {
		rs, err := s.Results()
		if err != nil {
			continue
		}
		for _, r := range rs {
			ev := Evidence{Instance: s.Instance, Sealer: s.Seal.Domain}
			switch r := r.(type) {
			case *authres.DMARCResult:
				if r.Value == authres.ResultPass && strings.EqualFold(r.From, fromDomain) {
					ev.Method, ev.Domain = "dmarc", fromDomain
					return ev, true
				}
			case *authres.DKIMResult:
				if r.Value == authres.ResultPass && r.Domain != "" && aligned(strings.ToLower(r.Domain), fromDomain) {
					ev.Method, ev.Domain = "dkim", strings.ToLower(r.Domain)
					return ev, true
				}
			case *authres.SPFResult:
				d := r.From
				if i := strings.LastIndexByte(d, '@'); i >= 0 {
					d = d[i+1:]
				}
				if r.Value == authres.ResultPass && d != "" && aligned(strings.ToLower(d), fromDomain) {
					ev.Method, ev.Domain = "spf", strings.ToLower(d)
					return ev, true
				}
			}
		}
	}
	return Evidence{}, false
}

// ReportComment describes a passing chain for the comment of a DMARC
// aggregate report's local_policy reason, in the form of RFC 8617
// §7.2.1: "arc=pass as[2].d=d2.example as[2].s=s2 as[1].d=d1.example
// as[1].s=s1 client-ip[1]=192.0.2.1", the seals newest first and the
// client address the first sealer recorded (smtp.remote-ip in its AAR),
// when it did.
func (v *Verification) ReportComment() string {
	var b strings.Builder
	b.WriteString("arc=" + string(v.Result))
	for i := len(v.Sets) - 1; i >= 0; i-- {
		s := v.Sets[i]
		n := strconv.Itoa(s.Instance)
		b.WriteString(" as[" + n + "].d=" + strings.ToLower(s.Seal.Domain) + " as[" + n + "].s=" + s.Seal.Selector)
	}
	if len(v.Sets) > 0 {
		if ip := remoteIP(v.Sets[0].AuthResults); ip != "" {
			b.WriteString(" client-ip[1]=" + ip)
		}
	}
	return b.String()
}

// remoteIP finds an smtp.remote-ip property in an AAR payload; "" when
// none or when it is not an address.
func remoteIP(payload string) string {
	for _, f := range strings.FieldsFunc(payload, func(r rune) bool { return r == ' ' || r == ';' || r == '\t' }) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.EqualFold(k, "smtp.remote-ip") {
			if a, err := netip.ParseAddr(strings.Trim(v, `"`)); err == nil {
				return a.String()
			}
		}
	}
	return ""
}
