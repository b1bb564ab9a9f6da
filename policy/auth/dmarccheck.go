package auth

import (
	"context"
	"fmt"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/message"
)

// DMARCOutcome is the dmarc check's typed result (Result.Data).
type DMARCOutcome struct {
	Status policy.Status
	// From is the RFC5322.From domain evaluated (the one that decided, when
	// a message has several).
	From string
	// Record is the policy found, nil when none.
	Record *Record
	// Applied is the policy to apply after sp= and pct= (RFC 7489 §6.6.4);
	// "" when DMARC passed or no policy exists.
	Applied Policy
	// SPFAligned and DKIMAligned say which identifier passed aligned.
	SPFAligned, DKIMAligned bool
	// PolicyDomain is where the record was found (the From domain or its
	// organizational domain, RFC 7489 §6.6.3).
	PolicyDomain string
	// SampledOut: pct= spared this message the full policy (§6.6.4).
	SampledOut bool
	// Exempt: the sender is a configured forwarder or list, so the
	// policy was not applied.
	Exempt bool
	// ARCOverride, when not "", says that a trusted sealer's recorded
	// pass relaxed the policy (policy.arc-override): the chain in the
	// words of RFC 8617 §7.2.1 ("arc=pass as[2].d=... as[1].s=..."), the
	// comment of the local_policy reason in aggregate reports.
	ARCOverride string
	Err         error
}

type dmarcCheck struct{ a *authenticator }

func (c *dmarcCheck) Name() string { return DMARC }
func (c *dmarcCheck) After() []string {
	if c.a.cfg.ARC.Enabled {
		return []string{SPF, DKIM, ARC}
	}
	return []string{SPF, DKIM}
}

// prefetchDMARC starts the policy lookups for the From domains so that
// they overlap with SPF and DKIM (RFC 7489 does not order them).
func (a *authenticator) prefetchDMARC(ctx context.Context, m *message.Message) {
	domains, _, _ := FromDomains(m.Header)
	for i, d := range domains {
		if i >= 4 {
			break
		}
		names := []string{"_dmarc." + d}
		if org := OrgDomain(d); org != d && org != "" {
			names = append(names, "_dmarc."+org)
		}
		for _, n := range names {
			go a.resolver.LookupTXT(ctx, n)
		}
	}
}

func (c *dmarcCheck) Check(ctx context.Context, m *message.Message, prior policy.Results) (policy.Result, error) {
	a := c.a
	if !a.judged(m) {
		return policy.Result{Status: policy.StatusSkip, Detail: "mail from us: not judged"}, nil
	}
	spfO, spfRan := SPFOutcomeOf(prior)
	dkimO, _ := DKIMOutcomeOf(prior)
	if !spfRan && a.cfg.SPF.Enabled {
		// The spf step failed to run (timeout, error): treat as temporary.
		spfO = &SPFOutcome{Status: StatusTemperror}
	}
	if dkimO == nil && a.cfg.DKIM.Enabled && prior[DKIM].Status == policy.StatusError {
		dkimO = &DKIMOutcome{Status: StatusTemperror, Signatures: []DKIMSignature{{Status: StatusTemperror}}}
	}
	o := a.evalDMARC(ctx, m.Header, spfO, dkimO)
	res := policy.Result{Status: o.Status, Data: o}
	res.Detail = fmt.Sprintf("from=%s: %s", o.From, o.Status)
	if o.Record != nil {
		res.Detail += fmt.Sprintf(" (p=%s applied=%s spf_aligned=%t dkim_aligned=%t)", o.Record.Policy, o.Applied, o.SPFAligned, o.DKIMAligned)
	}
	if o.Err != nil {
		res.Detail += " (" + o.Err.Error() + ")"
	}
	params := map[string]string{"header.from": o.From}
	if o.Record != nil {
		// RFC 7489 §11.2 / RFC 8601: the policy that was evaluated.
		p := o.Applied
		if p == "" {
			p = o.Record.Policy
		}
		params["policy.dmarc"] = string(p)
	}
	res.AuthResults = []authres.Result{&authres.GenericResult{Method: "dmarc", Value: authres.ResultValue(o.Status), Params: params}}

	if a.exempt(m, spfO, dkimO) {
		o.Exempt = true
		res.Detail += "; exempt sender"
		return res, nil
	}
	switch o.Status {
	case StatusPass:
		// DMARC decides: aligned authentication; SPF/DKIM failures only
		// scored (by their own checks).
	case StatusFail:
		if a.cfg.DMARC.HonorPolicy {
			// RFC 7489 §6.6.2 / §6.3: apply the Domain Owner's policy.
			if s := a.cfg.DMARC.Scores["fail"]; s != 0 {
				res.Score += s
				res.Signals = append(res.Signals, policy.Signal{Name: "dmarc-fail", Score: s})
			}
			if ev, ok := a.arcOverride(prior, o); ok {
				// RFC 7489 §7.2 local_policy, RFC 8617 §7.2: a trusted
				// sealer saw an aligned pass before the message was
				// changed (a list, a forward). The failure keeps its score.
				params["policy.arc-override"] = ev.Sealer
				if chain, ok := ARCOutcomeOf(prior); ok {
					o.ARCOverride = chain.ReportComment()
				}
				res.AuthResults = []authres.Result{&authres.GenericResult{Method: "dmarc", Value: authres.ResultValue(o.Status), Params: params}}
				res.Reasons = append(res.Reasons, "dmarc-arc-override")
				res.Detail += fmt.Sprintf("; %s override: i=%d %s=pass for %s", ARC, ev.Instance, ev.Method, ev.Domain)
				return res, nil
			}
			switch o.Applied {
			case PolicyReject:
				res.Action, res.Reply = policy.ActionReject, a.cfg.DMARC.RejectReply
				res.Reasons = append(res.Reasons, "dmarc-reject")
			case PolicyQuarantine:
				res.Action, res.QuarantineReason = policy.ActionQuarantine, "dmarc-quarantine"
				res.Reasons = append(res.Reasons, "dmarc-quarantine")
			default:
				res.Reasons = append(res.Reasons, "dmarc-fail")
			}
		} else {
			apply(&res, "dmarc", a.cfg.DMARC.Outcomes, StatusFail, true)
		}
	case StatusTemperror:
		apply(&res, "dmarc", a.cfg.DMARC.Outcomes, StatusTemperror, true)
	default:
		// none or permerror: no usable policy, so DMARC does not decide and
		// the SPF and DKIM actions apply (their scores are already counted
		// by their own checks).
		apply(&res, "dmarc", a.cfg.DMARC.Outcomes, o.Status, true)
		if spfO != nil && a.cfg.SPF.Enabled {
			applyActionOnly(&res, "spf", a.cfg.SPF.Outcomes, spfO.Status)
		}
		if dkimO != nil && a.cfg.DKIM.Enabled {
			applyActionOnly(&res, "dkim", a.cfg.DKIM.Outcomes, dkimO.Status)
		}
	}
	return res, nil
}

// applyActionOnly applies the action (not the score) configured for a
// status of another method.
func applyActionOnly(res *policy.Result, method string, o Outcomes, status policy.Status) {
	apply(res, method, Outcomes{Actions: o.Actions}, status, true)
}

// exempt reports whether the message comes from a known forwarder or list.
func (a *authenticator) exempt(m *message.Message, spfO *SPFOutcome, dkimO *DKIMOutcome) bool {
	if a.exemptIP(m) || a.exemptDomain(m.Client.Name) {
		return true
	}
	if spfO != nil && spfO.Status == StatusPass && a.exemptDomain(spfO.Domain) {
		return true
	}
	for _, d := range dkimO.Passing() {
		if a.exemptDomain(d) {
			return true
		}
	}
	return false
}

// evalDMARC evaluates every From domain (RFC 7489 §6.6.1) and returns the
// strictest outcome.
func (a *authenticator) evalDMARC(ctx context.Context, h message.Header, spfO *SPFOutcome, dkimO *DKIMOutcome) *DMARCOutcome {
	domains, fields, ok := FromDomains(h)
	if fields == 0 {
		// RFC 7489 §6.6.1: a message without From is outside DMARC's
		// scope (RFC 5322 requires one; the MTA or rules may refuse it).
		return &DMARCOutcome{Status: StatusNone, Err: fmt.Errorf("auth: no From field")}
	}
	if len(domains) == 0 {
		if !ok {
			return &DMARCOutcome{Status: StatusPermerror, Err: fmt.Errorf("auth: From field without a usable domain")}
		}
		return &DMARCOutcome{Status: StatusNone}
	}
	if len(domains) > 4 {
		domains = domains[:4] // bound the work; the strictest of the first four decides
	}
	rank := map[policy.Status]int{StatusNone: 0, StatusPass: 1, StatusPermerror: 2, StatusTemperror: 3, StatusFail: 4}
	polRank := map[Policy]int{"": 0, PolicyNone: 1, PolicyQuarantine: 2, PolicyReject: 3}
	outs := make([]*DMARCOutcome, len(domains))
	done := make(chan struct{}, len(domains))
	for i, d := range domains {
		go func() {
			outs[i] = a.evalDomain(ctx, d, spfO, dkimO)
			done <- struct{}{}
		}()
	}
	for range domains {
		<-done
	}
	var best *DMARCOutcome
	for _, o := range outs {
		if best == nil || rank[o.Status] > rank[best.Status] ||
			(o.Status == best.Status && polRank[o.Applied] > polRank[best.Applied]) {
			best = o
		}
	}
	return best
}

// evalDomain is DMARC for one From domain.
func (a *authenticator) evalDomain(ctx context.Context, from string, spfO *SPFOutcome, dkimO *DKIMOutcome) *DMARCOutcome {
	o := &DMARCOutcome{From: from}
	d := Discover(ctx, a.resolver.LookupTXT, dns.IsTemporary, from)
	switch {
	case d.Err != nil && d.Temp:
		o.Status, o.Err = StatusTemperror, d.Err
		return o
	case d.Err != nil:
		o.Status, o.Err = StatusPermerror, d.Err
		return o
	case d.Record == nil:
		o.Status = StatusNone
		return o
	}
	rec := d.Record
	o.Record, o.PolicyDomain = rec, d.Domain
	// RFC 7489 §3.1.2: SPF-authenticated identifier aligned with From.
	if spfO != nil && spfO.Status == StatusPass && Aligned(spfO.Domain, from, rec.ASPF) {
		o.SPFAligned = true
	}
	// §3.1.1: a passing DKIM signature whose d= is aligned.
	for _, sd := range dkimO.Passing() {
		if Aligned(sd, from, rec.ADKIM) {
			o.DKIMAligned = true
			break
		}
	}
	if o.SPFAligned || o.DKIMAligned {
		// §4.2: pass if at least one aligned identifier passes.
		o.Status = StatusPass
		return o
	}
	// A temporary failure of SPF or DKIM might have been an aligned pass:
	// the result is temperror, never a fail that could reject good mail.
	if (spfO != nil && spfO.Status == StatusTemperror && Aligned(spfO.Domain, from, AlignRelaxed)) || dkimTempAligned(dkimO, from) {
		o.Status = StatusTemperror
		o.Err = fmt.Errorf("auth: SPF or DKIM had a temporary error")
		return o
	}
	o.Status = StatusFail
	// §6.3: sp= applies to subdomains when the record was found at the
	// organizational domain; otherwise p=.
	pol := rec.Policy
	if d.OrgLevel && rec.SubdomainPolicy != "" {
		pol = rec.SubdomainPolicy
	}
	// §6.6.4: pct= samples the messages the policy applies to; the others
	// get the next less strict policy.
	if rec.Percent < 100 && a.sample() >= rec.Percent {
		o.SampledOut = pol != PolicyNone
		switch pol {
		case PolicyReject:
			pol = PolicyQuarantine
		case PolicyQuarantine:
			pol = PolicyNone
		}
	}
	o.Applied = pol
	return o
}

func dkimTempAligned(o *DKIMOutcome, from string) bool {
	if o == nil {
		return false
	}
	for _, s := range o.Signatures {
		if s.Status == StatusTemperror && (s.Domain == "" || Aligned(s.Domain, from, AlignRelaxed)) {
			return true
		}
	}
	return false
}

// arcOverride reports whether a DMARC failure with p=reject or
// p=quarantine is relaxed: the ARC chain passes and, walking back from its
// newest set while the sealers are in trusted_sealers, one of them
// recorded an aligned SPF or DKIM pass (or a DMARC pass) for the From
// domain. Never on an untrusted chain.
func (a *authenticator) arcOverride(prior policy.Results, o *DMARCOutcome) (arc.Evidence, bool) {
	if o.Applied != PolicyReject && o.Applied != PolicyQuarantine || len(a.cfg.ARC.TrustedSealers) == 0 || o.Record == nil {
		return arc.Evidence{}, false
	}
	v, ok := ARCOutcomeOf(prior)
	if !ok {
		return arc.Evidence{}, false
	}
	// One alignment test for the recorded SPF and DKIM results: the
	// stricter of adkim= and aspf=.
	mode := AlignRelaxed
	if o.Record.ADKIM == AlignStrict || o.Record.ASPF == AlignStrict {
		mode = AlignStrict
	}
	return arc.AlignedPass(v.Trusted(a.trustedSealer), o.From, func(d, from string) bool { return Aligned(d, from, mode) })
}
