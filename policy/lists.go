package policy

import (
	"context"
	"path"
	"strings"

	"github.com/mailwarden/mailwarden/policy/message"
)

// listCheck applies the allow and deny lists on client address, HELO,
// envelope sender and recipients. A deny match asks for lists.deny_action
// (reject by default); an allow match sets Status pass and Allowlisted,
// which the merge step reads to soften every non-mandatory action. Deny wins over allow.
type listCheck struct{ cfg *Config }

func (c *listCheck) Name() string { return "lists" }

func (c *listCheck) Check(_ context.Context, m *message.Message, _ Results) (Result, error) {
	l := &c.cfg.Lists
	var deny []string
	if l.DenyIPs.Contains(m.Client.Addr) {
		deny = append(deny, "denylist-ip")
	}
	if matchHost(l.DenyHELOs, m.Client.HELO) {
		deny = append(deny, "denylist-helo")
	}
	if matchAddr(l.DenySenders, m.MailFrom) {
		deny = append(deny, "denylist-sender")
	}
	for _, r := range m.Rcpts {
		if matchAddr(l.DenyRecipients, r) {
			deny = append(deny, "denylist-rcpt")
			break
		}
	}
	if len(deny) > 0 {
		return Result{Status: StatusMatch, Action: l.DenyAction, Reasons: deny, QuarantineReason: deny[0]}, nil
	}
	var allow []string
	if l.AllowIPs.Contains(m.Client.Addr) {
		allow = append(allow, "allowlist-ip")
	}
	if matchHost(l.AllowHELOs, m.Client.HELO) {
		allow = append(allow, "allowlist-helo")
	}
	if matchAddr(l.AllowSenders, m.MailFrom) {
		allow = append(allow, "allowlist-sender")
	}
	if len(m.Rcpts) > 0 {
		all := true
		for _, r := range m.Rcpts {
			all = all && matchAddr(l.AllowRecipients, r)
		}
		if all {
			allow = append(allow, "allowlist-rcpt")
		}
	}
	if len(allow) > 0 {
		return Result{Status: StatusPass, Allowlisted: true, Detail: strings.Join(allow, ",")}, nil
	}
	return Result{Status: StatusNone}, nil
}

// CheckRcpt refuses a deny-listed recipient at RCPT time, so that the other
// recipients of the same message are not affected.
func (c *listCheck) CheckRcpt(_ context.Context, _ *message.Envelope, rcpt string) (Result, error) {
	if matchAddr(c.cfg.Lists.DenyRecipients, rcpt) {
		return Result{Status: StatusMatch, Action: c.cfg.Lists.DenyAction, Reasons: []string{"denylist-rcpt"}}, nil
	}
	return Result{Status: StatusNone}, nil
}

// normalizePattern is how list patterns are stored: trimmed, lower case.
func normalizePattern(p string) string { return strings.ToLower(strings.TrimSpace(p)) }

// matchAddr matches an address against patterns: "user@dom" (wildcards
// allowed on either side), "dom" (every address of that domain), "*.dom"
// (its subdomains). Comparison ignores case: patterns come lower-cased
// from Config (validate normalises them once). The null sender matches "<>".
func matchAddr(patterns []string, addr string) bool {
	a := strings.ToLower(addr)
	d := message.Domain(a)
	for _, p := range patterns {
		switch {
		case p == "<>":
			if a == "" {
				return true
			}
		case a == "":
		case strings.Contains(p, "@"):
			if p == a || addrGlob(p, a) {
				return true
			}
		default:
			if globHost(p, d) {
				return true
			}
		}
	}
	return false
}

// addrGlob is path.Match without the special meaning of "/": RFC 5321
// §4.1.2 allows "/" in a local part, and "*@dom" must match it too.
func addrGlob(p, a string) bool {
	ok, _ := path.Match(strings.ReplaceAll(p, "/", "\x00"), strings.ReplaceAll(a, "/", "\x00"))
	return ok
}

func matchHost(patterns []string, host string) bool {
	h := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(host), "."))
	if h == "" {
		return false
	}
	for _, p := range patterns {
		if globHost(p, h) {
			return true
		}
	}
	return false
}

// globHost matches a host or domain pattern: exact, "*.dom" for subdomains
// (not dom itself), or a path.Match glob.
func globHost(p, h string) bool {
	if p == h {
		return true
	}
	if s, ok := strings.CutPrefix(p, "*."); ok && !strings.ContainsAny(s, "*?[") {
		return strings.HasSuffix(h, "."+s)
	}
	ok, _ := path.Match(p, h)
	return ok
}

// AllowsRecipient reports whether addr is on allow_recipients (the
// quarantine spares such a recipient's copy).
func (l *ListsConfig) AllowsRecipient(addr string) bool {
	return matchAddr(l.AllowRecipients, addr)
}
