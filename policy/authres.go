package policy

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"
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
// the first token, before any "version" and ";" (RFC 8601 §2.2).
func authservID(v string) string {
	if id, _, err := authres.Parse(Unfold(v)); err == nil && id != "" {
		return id
	}
	v = Unfold(v)
	// Strip a leading CFWS comment, then take the first token.
	for strings.HasPrefix(v, "(") {
		if i := strings.IndexByte(v, ')'); i >= 0 {
			v = strings.TrimSpace(v[i+1:])
		} else {
			break
		}
	}
	end := strings.IndexAny(v, "; \t(")
	if end >= 0 {
		v = v[:end]
	}
	return strings.TrimSpace(v)
}
