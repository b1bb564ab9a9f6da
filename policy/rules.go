package policy

import (
	"context"
	"strings"

	"github.com/mailwarden/mailwarden/policy/message"
)

// ruleCheck applies the operator's [[rule]] entries: a regular expression on
// a header field (every instance, unfolded) or on the decoded body text.
type ruleCheck struct{ cfg *Config }

func (c *ruleCheck) Name() string { return "rules" }

func (c *ruleCheck) Check(ctx context.Context, m *message.Message, _ Results) (Result, error) {
	res := Result{Status: StatusNone}
	var text string
	textDone := false
	for i := range c.cfg.Rules {
		r := &c.cfg.Rules[i]
		matched := false
		if r.Body {
			if !textDone {
				text, textDone = m.Text(), true
			}
			matched = r.re.MatchString(text)
		} else {
			for _, v := range m.Header.Values(r.Header) {
				if r.re.MatchString(v) {
					matched = true
					break
				}
			}
		}
		if matched == r.Negate {
			continue
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		res.Status = StatusMatch
		code := "rule-" + r.Name
		res.Reasons = append(res.Reasons, code)
		if r.Score != 0 {
			res.Score += r.Score
			res.Signals = append(res.Signals, Signal{Name: code, Score: r.Score})
		}
		if r.Action != nil && *r.Action > res.Action {
			res.Action = *r.Action
			res.QuarantineReason = code
			if r.Reply != nil {
				res.Reply = *r.Reply
			} else {
				res.Reply = Reply{}
			}
		}
	}
	if res.Status == StatusMatch {
		res.Detail = strings.Join(res.Reasons, ",")
	}
	return res, nil
}
