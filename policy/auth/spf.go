package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// SPFOutcome is the spf check's typed result (Result.Data).
type SPFOutcome struct {
	Status policy.Status
	// Identity is "mailfrom" or "helo" (RFC 7208 §2.3, §2.4).
	Identity string
	// Domain is the checked domain: the MAIL FROM domain, or the HELO name
	// for the null sender. DMARC aligns it with the From domain.
	Domain string
	// Sender is the <sender> of check_host(): MAIL FROM, or
	// postmaster@HELO.
	Sender string
	Err    error
}

type spfCheck struct{ a *authenticator }

func (c *spfCheck) Name() string { return SPF }

func (c *spfCheck) Check(ctx context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	a := c.a
	judged := a.judged(m)
	if !judged {
		return policy.Result{Status: policy.StatusSkip, Detail: "mail from us: not judged"}, nil
	}
	o := a.evalSPF(ctx, m.Client.Addr, m.Client.HELO, m.MailFrom)
	res := policy.Result{Status: o.Status, Data: o, Detail: fmt.Sprintf("%s %s: %s", o.Identity, o.Domain, o.Status)}
	if o.Err != nil && o.Status != StatusPass {
		res.Detail += " (" + o.Err.Error() + ")"
	}
	ar := &authres.SPFResult{Value: authres.ResultValue(o.Status)}
	if o.Identity == "helo" {
		ar.Helo = m.Client.HELO
	} else {
		ar.From = m.MailFrom
	}
	res.AuthResults = []authres.Result{ar}
	if a.cfg.SPF.ReceivedSPF {
		res.Headers = []message.Field{{Name: "Received-SPF", Value: receivedSPF(a.core.AuthservID, o, m)}}
	}
	if a.exemptIP(m) || a.exemptDomain(m.Client.Name) {
		res.Detail += "; exempt client"
		return res, nil
	}
	// With DMARC enabled the dmarc check decides the action (RFC 7489
	// §6.6.2: DMARC supersedes a plain SPF verdict); here only the score.
	apply(&res, "spf", a.cfg.SPF.Outcomes, o.Status, !a.cfg.DMARC.Enabled)
	return res, nil
}

// evalSPF runs check_host() (RFC 7208 §4) for MAIL FROM, or for the HELO
// identity when MAIL FROM is null (§2.4).
func (a *authenticator) evalSPF(ctx context.Context, ip netip.Addr, helo, mailFrom string) *SPFOutcome {
	o := &SPFOutcome{Identity: "mailfrom", Sender: mailFrom}
	helo = strings.TrimSuffix(strings.TrimSpace(helo), ".")
	if mailFrom == "" {
		// RFC 7208 §2.4: for the null sender, check_host() uses
		// "postmaster@" and the HELO identity.
		o.Identity = "helo"
		if helo == "" || strings.HasPrefix(helo, "[") || !strings.Contains(helo, ".") {
			// §2.3: a HELO that is an address literal or not a FQDN
			// yields none.
			o.Status, o.Domain = StatusNone, helo
			return o
		}
		o.Sender = "postmaster@" + helo
	} else if !strings.Contains(mailFrom, "@") {
		// §4.3: a sender without local part.
		o.Sender = "postmaster@" + mailFrom
	} else if strings.HasPrefix(mailFrom, "@") {
		o.Sender = "postmaster" + mailFrom
	}
	o.Domain = strings.ToLower(message.Domain(o.Sender))
	if !validSPFDomain(o.Domain) {
		// RFC 7208 §4.3: a malformed or single-label <domain> gives none.
		o.Status = StatusNone
		return o
	}
	if !ip.IsValid() {
		o.Status = StatusNone
		return o
	}
	opts := []spf.Option{
		spf.WithContext(ctx),
		spf.WithResolver(spfResolver{a.spfDNS}),
		spf.OverrideLookupLimit(uint(a.cfg.SPF.MaxLookups)),
		spf.OverrideVoidLookupLimit(uint(a.cfg.SPF.MaxVoidLookups)),
	}
	r, err := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, o.Sender, opts...)
	o.Status, o.Err = policy.Status(r), err
	if o.Status == "" {
		o.Status = StatusPermerror
	}
	return o
}

// validSPFDomain reports whether d is a multi-label domain name with
// labels of 1..63 octets (RFC 7208 §4.3).
func validSPFDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
	}
	return true
}

// spfResolver adapts the shared resolver to the SPF library, which tests
// errors with a type assertion to *net.DNSError (not errors.As) and treats
// a temporary one as temperror (RFC 7208 §2.6.6).
type spfResolver struct{ r resolver }

type resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

func (s spfResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	t, err := s.r.LookupTXT(ctx, name)
	return t, asDNSError(err, name)
}

func (s spfResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mx, err := s.r.LookupMX(ctx, name)
	return mx, asDNSError(err, name)
}

func (s spfResolver) LookupIPAddr(ctx context.Context, name string) ([]net.IPAddr, error) {
	ips, err := s.r.LookupIPAddr(ctx, name)
	return ips, asDNSError(err, name)
}

func (s spfResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	n, err := s.r.LookupAddr(ctx, addr)
	// The library expands %{p} from these names: without the root dot,
	// "%{p}.example.com" must not become "name..example.com".
	for i := range n {
		n[i] = strings.TrimSuffix(n[i], ".")
	}
	return n, asDNSError(err, addr)
}

// asDNSError makes sure an error reaches the library as a bare
// *net.DNSError.
func asDNSError(err error, name string) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}

// receivedSPF formats a Received-SPF value (RFC 7208 §9.1).
func receivedSPF(authserv string, o *SPFOutcome, m *message.Message) string {
	ip := clientIP(m.Client.Addr)
	var comment string
	switch o.Status {
	case StatusPass:
		comment = fmt.Sprintf("domain of %s designates %s as permitted sender", o.Sender, ip)
	case StatusFail, StatusSoftfail:
		comment = fmt.Sprintf("domain of %s does not designate %s as permitted sender", o.Sender, ip)
	case StatusNeutral:
		comment = fmt.Sprintf("%s is neither permitted nor denied by domain of %s", ip, o.Sender)
	case StatusTemperror:
		comment = fmt.Sprintf("error in processing during lookup of %s", o.Sender)
	case StatusPermerror:
		comment = fmt.Sprintf("the SPF record of %s is invalid", o.Domain)
	default:
		comment = fmt.Sprintf("domain of %s does not publish SPF", o.Sender)
	}
	comment = strings.NewReplacer("(", "", ")", "", "\r", "", "\n", "").Replace(comment)
	kv := []string{"client-ip=" + ip}
	if m.MailFrom != "" {
		kv = append(kv, "envelope-from="+quoteSPF(m.MailFrom))
	} else {
		kv = append(kv, "envelope-from=\"\"")
	}
	if m.Client.HELO != "" {
		kv = append(kv, "helo="+quoteSPF(m.Client.HELO))
	}
	kv = append(kv, "receiver="+authserv, "identity="+o.Identity)
	return fmt.Sprintf(" %s (%s: %s)\n\t%s;", o.Status, authserv, comment, strings.Join(kv, "; "))
}

func quoteSPF(s string) string {
	s = strings.NewReplacer("\\", "", "\"", "", "\r", "", "\n", "").Replace(s)
	return `"` + s + `"`
}
