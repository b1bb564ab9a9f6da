package sa

import "strings"

// Auth is what the site's own SPF, DKIM and DMARC checks found (RFC 7208,
// RFC 6376, RFC 7489), for the evals of SpamAssassin's SPF, DKIM and
// DMARC plugins: the daemon has done the DNS work already, so those rules
// read its results instead of asking again. Results use the RFCs' words
// in lower case ("pass", "fail", "softfail", "neutral", "none",
// "permerror", "temperror"); "" means the check did not run, and then no
// rule of that check fires, as when SpamAssassin runs without network
// tests.
type Auth struct {
	// SPF is the result for the MAIL FROM identity (RFC 7208 §2.4), and
	// SPFHELO for the HELO identity (§2.3) when it was checked.
	SPF, SPFHELO string
	// DKIM has one entry per DKIM-Signature field (RFC 6376 §3.5).
	DKIM []DKIMSignature
	// DMARC is "pass", "fail" or "none" (no policy record found, RFC 7489
	// §6.6.3); DMARCPolicy the record's p= (or sp=) when one was found:
	// "none", "quarantine" or "reject".
	DMARC, DMARCPolicy string
}

// DKIMSignature is one signature's outcome: its signing domain (d=) and
// whether it verified.
type DKIMSignature struct {
	Domain string
	Valid  bool
}

// authEvals are the evals fed by Auth. SpamAssassin marks their rules
// tflags net and scores them 0 without network tests; with Options.Auth
// their scores come from the network score set, since the daemon did the
// network part.
var authEvals = map[string]bool{}

// authScoreSet is the score set for a rule: the network set for the
// auth evals when the caller feeds Auth.
func authScoreSet(d *Def, set int, auth bool) int {
	if auth && authEvals[d.Eval] {
		return set | 1
	}
	return set
}

func spfEval(helo bool, result string) evalDef {
	return evalDef{fn: func(c *msgCtx, _ []string) int {
		a := c.m.Auth
		if a == nil {
			return 0
		}
		got := a.SPF
		if helo {
			got = a.SPFHELO
		}
		return b2i(got == result)
	}}
}

// dkimDomainOK: with no acceptable domains any signature counts, else its
// d= must be one of them (check_dkim_signed/valid's argument list).
func dkimDomainOK(d string, acceptable []string) bool {
	if len(acceptable) == 0 {
		return true
	}
	for _, a := range acceptable {
		if strings.EqualFold(d, a) {
			return true
		}
	}
	return false
}

// evalDKIMSigned is check_dkim_signed: a DKIM-Signature field, valid or not.
func evalDKIMSigned(c *msgCtx, a []string) int {
	if c.m.Auth == nil {
		return 0
	}
	for _, s := range c.m.Auth.DKIM {
		if dkimDomainOK(s.Domain, a) {
			return 1
		}
	}
	return 0
}

// evalDKIMValid is check_dkim_valid: a signature that verified.
func evalDKIMValid(c *msgCtx, a []string) int {
	if c.m.Auth == nil {
		return 0
	}
	for _, s := range c.m.Auth.DKIM {
		if s.Valid && dkimDomainOK(s.Domain, a) {
			return 1
		}
	}
	return 0
}

// signedFor: a valid signature whose d= is the domain of addr or a parent
// of it (SpamAssassin's author-domain match).
func (c *msgCtx) signedFor(addr string, acceptable []string) bool {
	dom := strings.ToLower(domainOf(addr))
	if c.m.Auth == nil || dom == "" {
		return false
	}
	for _, s := range c.m.Auth.DKIM {
		d := strings.ToLower(strings.TrimSuffix(s.Domain, "."))
		if s.Valid && d != "" && (dom == d || strings.HasSuffix(dom, "."+d)) && dkimDomainOK(d, acceptable) {
			return true
		}
	}
	return false
}

// evalDKIMValidAuthor is check_dkim_valid_author_sig: a valid signature
// of the From domain.
func evalDKIMValidAuthor(c *msgCtx, a []string) int {
	from, _ := c.headerText("From", "addr")
	return b2i(c.signedFor(from, a))
}

// evalDKIMValidEnvelopeFrom is check_dkim_valid_envelopefrom: a valid
// signature of the envelope sender's domain.
func evalDKIMValidEnvelopeFrom(c *msgCtx, _ []string) int {
	env := c.m.EnvelopeFrom
	if !c.m.HasEnvelopeFrom {
		env, _ = c.headerText("Return-Path", "addr")
	}
	return b2i(c.signedFor(env, nil))
}

// evalDKIMDependable is check_dkim_dependable: the DKIM result can be
// relied on (it was computed, no temporary failure).
func evalDKIMDependable(c *msgCtx, _ []string) int {
	return b2i(c.m.Auth != nil)
}

func dmarcEval(result, policy string) evalDef {
	return evalDef{fn: func(c *msgCtx, _ []string) int {
		a := c.m.Auth
		if a == nil || a.DMARC == "" {
			return 0
		}
		switch result {
		case "pass":
			return b2i(a.DMARC == "pass")
		case "missing":
			return b2i(a.DMARC == "none")
		}
		return b2i(a.DMARC == "fail" && a.DMARCPolicy == policy)
	}}
}

func init() {
	for _, r := range []string{"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"} {
		evals["check_for_spf_"+r] = spfEval(false, r)
		evals["check_for_spf_helo_"+r] = spfEval(true, r)
	}
	evals["check_dkim_signed"] = evalDef{fn: evalDKIMSigned}
	evals["check_dkim_valid"] = evalDef{fn: evalDKIMValid}
	evals["check_dkim_valid_author_sig"] = evalDef{fn: evalDKIMValidAuthor}
	evals["check_dkim_valid_envelopefrom"] = evalDef{fn: evalDKIMValidEnvelopeFrom}
	evals["check_dkim_dependable"] = evalDef{fn: evalDKIMDependable}
	evals["check_dmarc_pass"] = dmarcEval("pass", "")
	evals["check_dmarc_reject"] = dmarcEval("fail", "reject")
	evals["check_dmarc_quarantine"] = dmarcEval("fail", "quarantine")
	evals["check_dmarc_none"] = dmarcEval("fail", "none")
	evals["check_dmarc_missing"] = dmarcEval("missing", "")
	for n := range evals {
		if strings.HasPrefix(n, "check_for_spf_") || strings.HasPrefix(n, "check_dkim_") || strings.HasPrefix(n, "check_dmarc_") {
			authEvals[n] = true
		}
	}
}
