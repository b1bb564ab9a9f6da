package policy

import (
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy/message"
)

// Header rendering: what the verdict adds on top of the message and which
// incoming fields it removes.

// renderHeaders builds our fields, in order: Authentication-Results first
// (RFC 8601 §5), then the status and flag fields.
func (p *Pipeline) renderHeaders(v *Verdict, th Thresholds, authRes []authres.Result) []message.Field {
	cfg := p.cfg
	top := []message.Field{{Name: "Authentication-Results", Value: formatAuthRes(cfg.AuthservID, authRes)}}
	if cfg.Headers.Status != "" {
		val := fmt.Sprintf("%s, score=%.1f required=%.1f", yesNo(v.Flagged), v.Score, th.AddHeader)
		if cfg.Headers.Reasons && len(v.Reasons) > 0 {
			val += " reasons=" + strings.Join(v.Reasons, ",")
		}
		if v.Mode == ModeMonitor && v.WouldBe != ActionAccept {
			val += " would=" + v.WouldBe.String()
		}
		top = append(top, message.Field{Name: cfg.Headers.Status, Value: val})
	}
	if cfg.Headers.Flag != "" && v.Flagged {
		top = append(top, message.Field{Name: cfg.Headers.Flag, Value: "YES"})
	}
	return top
}

// formatAuthRes builds the value of our Authentication-Results field
// (RFC 8601 §2.2). With no results it says "none" (§2.2: no authentication
// was performed).
func formatAuthRes(id string, results []authres.Result) string {
	v := authres.Format(id, results)
	if len(results) > 1 {
		// Fold one result per line (RFC 5322 §2.2.3) so that many DKIM
		// signatures cannot push a line past 998 characters. Inside milter
		// values a fold is a bare LF; the MTA writes CRLF.
		parts := strings.Split(v, "; ")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		v = strings.Join(parts, ";\n\t")
	}
	return " " + strings.TrimSpace(v)
}

// forged lists the incoming copies of what we add: an
// Authentication-Results that claims our authserv-id (RFC 8601 §5), and our
// own status fields. They go whatever the verdict, so that a message we
// accept unchecked (monitor mode, an oversize one) cannot carry them.
func (p *Pipeline) forged(m *message.Message) []HeaderRef {
	var refs []HeaderRef
	for i, f := range m.Header {
		if strings.EqualFold(f.Name, "Authentication-Results") && strings.EqualFold(authservID(f.Value), strings.TrimSuffix(p.cfg.AuthservID, ".")) {
			refs = append(refs, HeaderRef{Name: f.Name, Index: indexOf(m.Header, i)})
		}
	}
	for _, n := range []string{p.cfg.Headers.Status, p.cfg.Headers.Flag} {
		if n != "" {
			refs = appendAll(refs, m.Header, n)
		}
	}
	return refs
}

// authservID extracts the authserv-id of an Authentication-Results value:
// the first token after any comments, before any version and ";"
// (RFC 8601 §2.2). It is a "value" (RFC 2045): a token or a quoted
// string, and comments may touch it. Whatever a mail reader would take as
// the id must be recognised here, or a forged field with our id survives;
// one trailing dot is dropped for the same reason.
func authservID(v string) string {
	s := skipCFWS(message.Unfold(v))
	var id string
	if strings.HasPrefix(s, "\"") {
		var b strings.Builder
		for i := 1; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		id = b.String()
	} else {
		end := strings.IndexAny(s, "; \t(\"")
		if end < 0 {
			end = len(s)
		}
		id = s[:end]
	}
	return strings.TrimSuffix(strings.TrimSpace(id), ".")
}

// skipCFWS skips white space and (nested) comments (RFC 5322 §3.2.2).
func skipCFWS(s string) string {
	for {
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, "(") {
			return s
		}
		depth, i := 0, 0
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
				continue
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if i >= len(s) {
			return "" // unterminated comment
		}
		s = s[i+1:]
	}
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// indexOf returns the 1-based index of h[i] among the fields with its name.
func indexOf(h message.Header, i int) int {
	n := 0
	for j := 0; j <= i; j++ {
		if strings.EqualFold(h[j].Name, h[i].Name) {
			n++
		}
	}
	return n
}

func appendAll(refs []HeaderRef, h message.Header, name string) []HeaderRef {
	n := 0
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			n++
			refs = append(refs, HeaderRef{Name: f.Name, Index: n})
		}
	}
	return refs
}

func dedupRefs(refs []HeaderRef) []HeaderRef {
	seen := map[string]bool{}
	out := refs[:0]
	for _, r := range refs {
		k := strings.ToLower(r.Name) + "\x00" + fmt.Sprint(r.Index)
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}
