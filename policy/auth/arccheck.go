package auth

import (
	"context"
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/message"
)

// ARCOutcomeOf returns the arc check's chain verification among results.
func ARCOutcomeOf(results policy.Results) (*arc.Verification, bool) {
	v, ok := results[ARC].Data.(*arc.Verification)
	return v, ok
}

// arcCheck verifies the ARC chain (RFC 8617 §5.2) and reports it in
// Authentication-Results (arc=pass header.oldest-pass=N). It asks for no
// action and gives no score: a chain says who handled the message, not
// that it is good.
type arcCheck struct{ a *authenticator }

func (c *arcCheck) Name() string { return ARC }

func (c *arcCheck) Check(ctx context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	h := make([]arc.Field, len(m.Header))
	for i, f := range m.Header {
		h[i] = arc.Field{Name: f.Name, Value: f.Value}
	}
	v := arc.Verify(ctx, c.a.resolver, h, m.BodyReader())
	ip := ""
	if m.Client.Addr.IsValid() && v.Result != arc.ResultNone {
		ip = m.Client.Addr.String()
	}
	r := policy.Result{Status: policy.Status(v.Result), Data: v, AuthResults: []authres.Result{v.AuthResult(ip)}}
	if v.Err != nil {
		r.Detail = v.Err.Error()
	}
	return r, nil
}

// trustedSealer reports whether an ARC sealer is in trusted_sealers.
func (a *authenticator) trustedSealer(d string) bool {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	for _, t := range a.cfg.ARC.TrustedSealers {
		if strings.EqualFold(strings.TrimSuffix(t, "."), d) {
			return true
		}
	}
	return false
}
