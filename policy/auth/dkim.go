package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// DKIMSignature is the result for one DKIM-Signature field.
type DKIMSignature struct {
	Status     policy.Status
	Domain     string // d=
	Selector   string // s=
	Algorithm  string // a=
	Identifier string // i= (AUID)
	B          string // the first characters of b= (RFC 6008 header.b)
	Err        error
}

// DKIMOutcome is the dkim check's typed result (Result.Data).
type DKIMOutcome struct {
	Status     policy.Status // summary: pass if one signature passes
	Signatures []DKIMSignature
}

// Passing returns the d= of every passing signature.
func (o *DKIMOutcome) Passing() []string {
	if o == nil {
		return nil
	}
	var ds []string
	for _, s := range o.Signatures {
		if s.Status == StatusPass {
			ds = append(ds, s.Domain)
		}
	}
	return ds
}

// Temporary reports whether a signature could not be checked for a
// temporary reason.
func (o *DKIMOutcome) Temporary() bool {
	if o == nil {
		return false
	}
	for _, s := range o.Signatures {
		if s.Status == StatusTemperror {
			return true
		}
	}
	return false
}

type dkimCheck struct{ a *authenticator }

func (c *dkimCheck) Name() string { return DKIM }

func (c *dkimCheck) Check(ctx context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	a := c.a
	judged := a.judged(m)
	if judged && a.cfg.DMARC.Enabled {
		// Start the DMARC policy lookup now, while signatures are being
		// verified; the dmarc check then finds it in the resolver's cache
		// or joins the query in flight.
		a.prefetchDMARC(ctx, m)
	}
	o, err := a.verifyDKIM(ctx, m)
	if err != nil {
		return policy.Result{}, err
	}
	res := policy.Result{Status: o.Status, Data: o}
	var details []string
	for _, s := range o.Signatures {
		params := map[string]string{"header.d": s.Domain, "header.s": s.Selector, "header.a": s.Algorithm, "header.b": s.B}
		if s.Identifier != "" && s.Identifier != "@"+s.Domain {
			params["header.i"] = s.Identifier
		}
		res.AuthResults = append(res.AuthResults, &authres.GenericResult{Method: "dkim", Value: authres.ResultValue(s.Status), Params: params})
		d := fmt.Sprintf("d=%s s=%s a=%s: %s", s.Domain, s.Selector, s.Algorithm, s.Status)
		if s.Err != nil {
			d += " (" + s.Err.Error() + ")"
		}
		details = append(details, d)
	}
	if len(o.Signatures) == 0 {
		res.AuthResults = []authres.Result{&authres.DKIMResult{Value: authres.ResultNone}}
		details = append(details, "no signature")
	}
	res.Detail = strings.Join(details, "; ")
	if !judged || a.exemptIP(m) || a.exemptDomain(m.Client.Name) {
		return res, nil
	}
	for _, d := range o.Passing() {
		if a.exemptDomain(d) {
			return res, nil
		}
	}
	apply(&res, "dkim", a.cfg.DKIM.Outcomes, o.Status, !a.cfg.DMARC.Enabled)
	return res, nil
}

// verifyDKIM checks up to max_signatures signatures (RFC 6376 §6.1). An
// error means the message could not be read at all.
func (a *authenticator) verifyDKIM(ctx context.Context, m *message.Message) (*DKIMOutcome, error) {
	o := &DKIMOutcome{Status: StatusNone}
	var sigs []map[string]string
	for _, f := range m.Header {
		if strings.EqualFold(f.Name, "DKIM-Signature") {
			sigs = append(sigs, parseTags(f.Value))
		}
	}
	if len(sigs) == 0 {
		return o, nil
	}
	max := a.cfg.DKIM.MaxSignatures
	lookup := func(name string) ([]string, error) {
		// go-msgauth's lookup takes no context: close over the message's.
		// The resolver returns *net.DNSError with IsTimeout/IsTemporary,
		// which go-msgauth turns into a temperror, not a permerror.
		return a.resolver.LookupTXT(ctx, name)
	}
	verifs, err := dkim.VerifyWithOptions(m.Raw(), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: max})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("auth: dkim: %w", ctx.Err())
		}
		// A header section go-msgauth cannot parse: every signature is
		// unverifiable (RFC 6376 §6.1: permerror).
		verifs = nil
		for range min(len(sigs), max) {
			verifs = append(verifs, &dkim.Verification{Err: err})
		}
	}
	for i, v := range verifs {
		var t map[string]string
		if i < len(sigs) {
			t = sigs[i]
		}
		s := DKIMSignature{
			Domain:     strings.ToLower(firstNonEmpty(v.Domain, t["d"])),
			Selector:   t["s"],
			Algorithm:  strings.ToLower(t["a"]),
			Identifier: v.Identifier,
			B:          shortB(t["b"]),
			Err:        v.Err,
		}
		switch {
		case v.Err == nil:
			s.Status = StatusPass
		case dkim.IsTempFail(v.Err):
			s.Status = StatusTemperror
		case dkim.IsPermFail(v.Err):
			s.Status = StatusPermerror
		default:
			s.Status = StatusFail
		}
		o.Signatures = append(o.Signatures, s)
	}
	o.Status = summarize(o.Signatures)
	return o, nil
}

// summarize gives the message one DKIM status: pass if any signature
// passes, else the most telling failure.
func summarize(sigs []DKIMSignature) policy.Status {
	rank := map[policy.Status]int{StatusPass: 5, StatusTemperror: 4, StatusFail: 3, StatusPermerror: 2, StatusNone: 1}
	best := StatusNone
	for _, s := range sigs {
		if rank[s.Status] > rank[best] {
			best = s.Status
		}
	}
	return best
}

// parseTags reads a DKIM tag-list (RFC 6376 §3.2) leniently: white space
// removed from values (FWS is allowed anywhere in b=).
func parseTags(v string) map[string]string {
	out := map[string]string{}
	for _, p := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, dup := out[k]; dup {
			continue
		}
		out[k] = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, val)
	}
	return out
}

// shortB is the RFC 6008 §4 header.b value: enough of b= to tell
// signatures apart (8 characters, as most verifiers print).
func shortB(b string) string {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
