package policy

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy/message"
)

// decision is the merge's working state: the strongest action so far and
// what goes with it.
type decision struct {
	action     Action
	reply      Reply
	quarantine string
	allowed    bool // an allow list matched (Result.Allowlisted)
	mandatory  bool // a finding no allow list may soften (malware)
	authRes    []authres.Result
}

// merge combines the check results into the verdict, one named step each:
// collect the results, map the score to the thresholds, soften for allow
// lists and protected recipients, settle the reply and quarantine reason,
// render the header fields.
func (p *Pipeline) merge(m *message.Message, v *Verdict) {
	d := collect(m, v)
	th := p.cfg.ThresholdsFor(m.Rcpts)
	applyScore(&d, v, th)
	p.soften(&d, m, v)
	p.settle(&d, v)
	v.Prepend = append(p.renderHeaders(v, th, d.authRes), v.Prepend...)
	v.Delete = dedupRefs(append(v.Delete, p.forged(m)...))
}

// collect sums the scores, gathers reasons, header and envelope changes in
// check order, and keeps the most severe action (accept < quarantine <
// tempfail < discard < reject) with its reply and quarantine reason.
func collect(m *message.Message, v *Verdict) decision {
	d := decision{action: ActionAccept}
	for _, c := range v.Checks {
		r := c.Result
		d.allowed = d.allowed || r.Allowlisted
		v.Score += r.Score
		addReason(v, r.Reasons...)
		d.authRes = append(d.authRes, r.AuthResults...)
		v.Prepend = append(v.Prepend, r.Headers...)
		if r.ChangeFrom != "" {
			v.ChangeFrom = r.ChangeFrom
		}
		v.AddRcpts = append(v.AddRcpts, r.AddRcpts...)
		v.DeleteRcpts = append(v.DeleteRcpts, r.DeleteRcpts...)
		for _, h := range r.RemoveHeaders {
			v.Delete = appendAll(v.Delete, m.Header, h)
		}
		if r.Action > d.action || (r.Action == d.action && d.reply.IsZero()) {
			if r.Action > d.action {
				d.reply, d.quarantine = Reply{}, ""
			}
			d.action = r.Action
			if !r.Reply.IsZero() {
				d.reply = r.Reply
			}
			if r.QuarantineReason != "" {
				d.quarantine = r.QuarantineReason
			}
		}
		if r.Mandatory && r.Action != ActionAccept {
			d.mandatory = true
		}
	}
	return d
}

// applyScore maps the total score to an action through the recipients'
// thresholds and sets the verdict's spam class (Flagged).
func applyScore(d *decision, v *Verdict, th Thresholds) {
	v.Flagged = th.AddHeader > 0 && v.Score >= th.AddHeader
	scoreAction := ActionAccept
	switch {
	case th.Reject > 0 && v.Score >= th.Reject:
		scoreAction = ActionReject
	case th.Quarantine > 0 && v.Score >= th.Quarantine:
		scoreAction = ActionQuarantine
	}
	if scoreAction == ActionAccept {
		return
	}
	addReason(v, ReasonSpamScore)
	if scoreAction > d.action {
		d.action, d.reply, d.quarantine = scoreAction, Reply{}, ReasonSpamScore
	}
}

// soften lets allow lists and protected recipients (RFC 5321 §4.5.1
// postmaster, RFC 2142 abuse) override what content found, except for
// mandatory findings (malware).
func (p *Pipeline) soften(d *decision, m *message.Message, v *Verdict) {
	if d.action == ActionAccept || d.mandatory {
		return
	}
	switch {
	case d.allowed:
		addReason(v, ReasonAllowlisted)
		d.action, d.reply = ActionAccept, Reply{}
	case d.action != ActionTempfail && p.protection(m) == protectAll:
		addReason(v, ReasonProtectedRcpt)
		d.action, d.reply = ActionAccept, Reply{}
	case d.action != ActionTempfail && d.action != ActionQuarantine && p.protection(m) == protectSome:
		// Rejecting would lose postmaster's copy; hold it for review.
		addReason(v, ReasonProtectedRcpt)
		d.action, d.reply, d.quarantine = ActionQuarantine, Reply{}, ReasonProtectedRcpt
	}
}

// settle fixes the final action (accept in monitor mode), the reply (a
// generic one of the right class; none unless refused) and the quarantine
// reason given to the MTA.
func (p *Pipeline) settle(d *decision, v *Verdict) {
	cfg := p.cfg
	v.WouldBe = d.action
	v.Action = d.action
	if v.Mode == ModeMonitor {
		v.Action = ActionAccept
	}
	reply := d.reply
	switch v.WouldBe {
	case ActionReject:
		if reply.Code/100 != 5 {
			reply = cfg.Replies.Reject
		}
	case ActionTempfail:
		if reply.Code/100 != 4 {
			reply = cfg.Replies.Tempfail
		}
	case ActionQuarantine:
		q := d.quarantine
		if q == "" {
			q = cfg.Replies.Quarantine
		}
		v.QuarantineReason = q
		if others := strings.Join(v.Reasons, ","); others != "" && others != q {
			v.QuarantineReason += " (" + others + ")"
		}
	}
	if v.WouldBe != ActionReject && v.WouldBe != ActionTempfail {
		reply = Reply{} // a reply only goes with a refusal
	}
	v.Reply = reply
}

type protection int

const (
	protectNone protection = iota
	protectSome
	protectAll
)

// protection says whether some or all recipients are protected ones.
func (p *Pipeline) protection(m *message.Message) protection {
	n := 0
	for _, r := range m.Rcpts {
		if p.cfg.IsProtected(r) {
			n++
		}
	}
	switch {
	case n == 0:
		return protectNone
	case n == len(m.Rcpts):
		return protectAll
	}
	return protectSome
}

func addReason(v *Verdict, codes ...string) {
	for _, x := range codes {
		if x != "" && !contains(v.Reasons, x) {
			v.Reasons = append(v.Reasons, x)
		}
	}
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}
