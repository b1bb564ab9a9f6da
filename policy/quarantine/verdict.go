package quarantine

import (
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Held returns the recipients of a quarantine verdict whose copy is kept
// back; the others get the message. Nothing is spared when a finding is
// mandatory (malware). Otherwise a recipient on lists.allow_recipients is
// spared, and so is one whose own thresholds (per-domain score settings)
// the score does not reach when only the score asked for quarantine.
func Held(cfg *policy.Config, v *policy.Verdict, rcpts []string) []string {
	// Only the score asked for quarantine when it crossed a threshold and
	// no check asked for an action. A verdict with neither (an oversize
	// message: no check ran) is not the score's.
	scoreOnly := v.HasReason(policy.ReasonSpamScore)
	for _, c := range v.Checks {
		if c.Result.Mandatory && c.Result.Action != policy.ActionAccept {
			return append([]string(nil), rcpts...)
		}
		if c.Result.Action != policy.ActionAccept {
			scoreOnly = false
		}
	}
	var held []string
	for _, r := range rcpts {
		if cfg.Lists.AllowsRecipient(r) {
			continue
		}
		if scoreOnly {
			th := cfg.ThresholdsFor([]string{r})
			if th.Quarantine <= 0 || v.Score < th.Quarantine {
				continue
			}
		}
		held = append(held, r)
	}
	return held
}

// MetaOf describes a message for Put.
func MetaOf(m *message.Message, v *policy.Verdict, held []string, c Category) Meta {
	client := ""
	if m.Client.Addr.IsValid() {
		client = m.Client.Addr.String()
	}
	return Meta{
		Time: m.Received, QueueID: m.QueueID, Client: client, HELO: m.Client.HELO, MailFrom: m.MailFrom,
		Recipients: held, Category: c, Score: v.Score, Reasons: v.Reasons,
	}
}
