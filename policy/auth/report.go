package auth

import (
	"context"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/rua"
)

// ReportSink receives the facts of DMARC aggregate reports (RFC 7489
// §7.2), one observation per evaluated message whose policy names rua=.
// rua.Queue implements it: Observe never blocks, and drops are counted
// there.
type ReportSink interface {
	Observe(o rua.Observation) bool
}

// Observe implements policy.Observer: after the verdict, so that the
// report shows what was actually done with the message (the disposition),
// it hands the row to the report collector. It never changes the verdict
// and never waits for the store.
func (c *dmarcCheck) Observe(_ context.Context, m *message.Message, v *policy.Verdict) error {
	a := c.a
	if a.reports == nil {
		return nil
	}
	res, ok := v.Result(DMARC)
	if !ok {
		return nil
	}
	o, _ := res.Data.(*DMARCOutcome)
	if o == nil || o.Record == nil || len(o.Record.RUA) == 0 {
		return nil
	}
	// A tempfailed message is retried by its sender and counted then.
	if v.Action == policy.ActionTempfail {
		return nil
	}
	var spfO *SPFOutcome
	if r, ok := v.Result(SPF); ok {
		spfO, _ = r.Data.(*SPFOutcome)
	}
	var dkimO *DKIMOutcome
	if r, ok := v.Result(DKIM); ok {
		dkimO, _ = r.Data.(*DKIMOutcome)
	}
	at := m.Received
	if at.IsZero() {
		at = a.now()
	}
	a.reports.Observe(reportObservation(m, v, o, spfO, dkimO, at))
	return nil
}

// reportObservation turns the authentication facts and the verdict into
// one report row (RFC 7489 appendix C).
func reportObservation(m *message.Message, v *policy.Verdict, o *DMARCOutcome, spfO *SPFOutcome, dkimO *DKIMOutcome, at time.Time) rua.Observation {
	rec := o.Record
	pol := rua.Policy{
		Domain: o.PolicyDomain, ADKIM: string(rec.ADKIM), ASPF: string(rec.ASPF),
		P: rua.Disposition(rec.Policy), SP: rua.Disposition(rec.SubdomainPolicy), Pct: rec.Percent, RUA: rec.RUA,
	}
	if pol.Domain == "" {
		pol.Domain = o.From
	}
	row := rua.Row{
		SourceIP:     m.Client.Addr,
		HeaderFrom:   o.From,
		EnvelopeFrom: message.Domain(m.MailFrom),
		DKIM:         result(o.DKIMAligned),
		SPF:          result(o.SPFAligned),
	}
	if row.EnvelopeFrom == "" {
		// RFC 7489 appendix C asks for the RFC5321.MailFrom domain; for
		// the null sender SPF checked the HELO name (RFC 7208 §2.4).
		row.EnvelopeFrom = strings.ToLower(m.Client.HELO)
	}
	switch v.Action {
	case policy.ActionReject, policy.ActionDiscard:
		row.Disposition = rua.DispositionReject
	case policy.ActionQuarantine:
		row.Disposition = rua.DispositionQuarantine
	default:
		row.Disposition = rua.DispositionNone
	}
	// RFC 7489 §7.2.1 / appendix C PolicyOverrideType: why the
	// disposition differs from the policy.
	switch {
	case o.Exempt:
		row.Reasons = append(row.Reasons, rua.Reason{Type: rua.OverrideForwarded, Comment: "known forwarder or list"})
	case o.SampledOut:
		row.Reasons = append(row.Reasons, rua.Reason{Type: rua.OverrideSampledOut})
	}
	switch {
	case o.ARCOverride != "":
		// RFC 8617 §7.2.1: the policy was relaxed on the word of a
		// trusted ARC sealer; the comment names the chain.
		row.Reasons = append(row.Reasons, rua.Reason{Type: rua.OverrideLocalPolicy, Comment: o.ARCOverride})
	case o.Status == StatusFail && !o.Exempt && string(o.Applied) != string(row.Disposition) && o.Applied != "":
		// The receiver's own decision (mode, allow list, rules) differs
		// from the policy to apply.
		row.Reasons = append(row.Reasons, rua.Reason{Type: rua.OverrideLocalPolicy, Comment: "verdict " + v.Action.String()})
	}
	if spfO != nil && spfO.Domain != "" {
		scope := rua.ScopeMFrom
		if spfO.Identity == "helo" {
			scope = rua.ScopeHELO
		}
		row.SPFAuth = append(row.SPFAuth, rua.SPFAuth{Domain: spfO.Domain, Scope: scope, Result: spfStatus(spfO.Status)})
	}
	if dkimO != nil {
		for _, sig := range dkimO.Signatures {
			if sig.Domain == "" {
				continue
			}
			row.DKIMAuth = append(row.DKIMAuth, rua.DKIMAuth{Domain: sig.Domain, Selector: sig.Selector, Result: dkimStatus(sig.Status)})
		}
	}
	obs := rua.Observation{
		Time: at, Policy: pol, Row: row, Recipients: m.Rcpts,
		Subject: m.Header.Get("Subject"),
	}
	if !rua.IsReport(obs.Subject, nil, nil) {
		// Only now walk the MIME structure (once per message, shared
		// with the other checks) to recognise a report by its parts.
		for _, p := range m.Parts() {
			obs.MediaTypes = append(obs.MediaTypes, p.ContentType)
			if p.Filename != "" {
				obs.FileNames = append(obs.FileNames, p.Filename)
			}
		}
	}
	return obs
}

func result(pass bool) rua.Result {
	if pass {
		return rua.ResultPass
	}
	return rua.ResultFail
}

func spfStatus(s policy.Status) rua.SPFStatus {
	switch s {
	case StatusPass, StatusFail, StatusSoftfail, StatusNeutral, StatusTemperror, StatusPermerror:
		return rua.SPFStatus(s)
	}
	return rua.SPFNone
}

func dkimStatus(s policy.Status) rua.DKIMStatus {
	switch s {
	case StatusPass, StatusFail, StatusNeutral, StatusTemperror, StatusPermerror:
		return rua.DKIMStatus(s)
	case "policy":
		return rua.DKIMPolicy
	}
	return rua.DKIMNone
}
