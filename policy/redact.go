package policy

import "regexp"

// Secrets never reach a log line, an error or `config check` output: a
// config file may carry a Redis password in its URL (RFC 3986 §3.2.1
// userinfo, "user:password@") and shared secrets (SRS). Redact masks both
// forms wherever a text may quote them.
var (
	// RFC 3986 §3.2.1: the password is what follows the first ':' of the
	// userinfo, up to the '@' that ends it.
	userinfoRE = regexp.MustCompile(`(://[^/@\s:"']*:)[^/@\s"']*@`)
	// key = "value" and key: value forms of a key whose name says secret.
	secretKeyRE = regexp.MustCompile(`(?i)((?:password|passwd|secret|secrets|token|api_key)[a-z_]*"?\s*[=:]\s*)(\[[^\]]*\]|"[^"]*"|'[^']*'|[^\s,}]+)`)
)

// Redacted is what a secret is replaced with.
const Redacted = "xxxxx"

// Redact masks passwords in URLs and the values of secret-named keys in s.
func Redact(s string) string {
	s = userinfoRE.ReplaceAllString(s, "${1}"+Redacted+"@")
	return secretKeyRE.ReplaceAllString(s, "${1}"+Redacted)
}
