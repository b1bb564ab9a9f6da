package policy

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, secret string }{
		{`store: redis url: parse "redis://:hunter2@127.0.0.1:bad/0": invalid port`, "hunter2"},
		{`redis://user:hunter2@host:6379/0`, "hunter2"},
		{`rediss://default:p%40ss@host/1`, "p%40ss"},
		{`line 3: secret = "s3cr3t-srs-key"`, "s3cr3t-srs-key"},
		{`old_secrets = ["old1", "old2"]`, "old1"},
		{`{"password":"pw123"}`, "pw123"},
	} {
		got := Redact(c.in)
		if strings.Contains(got, c.secret) {
			t.Errorf("Redact(%q) = %q: still has %q", c.in, got, c.secret)
		}
		if !strings.Contains(got, Redacted) {
			t.Errorf("Redact(%q) = %q: no %q marker", c.in, got, Redacted)
		}
	}
	for _, keep := range []string{"redis://127.0.0.1:6379/0", "unix:///run/redis.sock", "inet:127.0.0.1:8895", "http://example.org:8080/x@y"} {
		if got := Redact(keep); got != keep {
			t.Errorf("Redact(%q) = %q, want it unchanged", keep, got)
		}
	}
}
