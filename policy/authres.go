package policy

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy/message"
)

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
