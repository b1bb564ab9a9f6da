package autoreply

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/message"
)

// SealName is the ARC sealing step's name.
const SealName = "arc_seal"

// sealStep adds our ARC set (RFC 8617 §5.1) to inbound mail that Postfix
// forwards off-site by its own expansion (rule 5's forwarding addresses
// and alias maps): the copy leaves with the set, so that the receiver can
// see what we found before the forward broke SPF. It is a policy.Finisher:
// it signs the message as it leaves us, our Authentication-Results (the
// AAR payload) included. A sealing error delivers the message unsealed
// and is logged ("arc seal failed").
type sealStep struct {
	core    *policy.Config
	arc     *auth.ARCConfig // list re-injections are auth's to seal
	fw      *Forwarders
	sealer  *arc.Sealer
	log     *slog.Logger
	metrics auth.SealMetrics // nil: none
	now     func() time.Time
}

// newSealStep builds the step when [auth.arc] seal_key names an RSA key
// of [dkim_sign]; nil when sealing is off.
func newSealStep(env *policy.Env, fw *Forwarders) (*sealStep, error) {
	sealer, err := auth.SealerOf(env.Config)
	if err != nil || sealer == nil {
		return nil, err
	}
	sm, _ := env.Metrics.(auth.SealMetrics)
	return &sealStep{core: env.Config, arc: &auth.ConfigOf(env.Config).ARC, fw: fw, sealer: sealer, log: env.Logger, metrics: sm, now: time.Now}, nil
}

func (s *sealStep) Name() string { return SealName }

// Check is never called: the pipeline runs a Finisher only at the end.
func (s *sealStep) Check(context.Context, *message.Message, policy.Results) (policy.Result, error) {
	return policy.Result{Status: policy.StatusNone}, nil
}

func (s *sealStep) Finish(_ context.Context, m *message.Message, h message.Header, v *policy.Verdict) ([]message.Field, error) {
	if s.core.FromUs(m.Client, m.Auth) || !s.forwarded(m) || s.arc != nil && s.arc.FromListServer(m) {
		return nil, nil
	}
	r, ok := v.Result(auth.ARC)
	chain, _ := r.Data.(*arc.Verification)
	if !ok || chain == nil {
		return nil, nil // the arc check did not run: no cv= to state
	}
	payload := ""
	for _, f := range h {
		if strings.EqualFold(f.Name, "Authentication-Results") {
			val := strings.Join(strings.Fields(message.Unfold(f.Value)), " ")
			if id, _, _ := strings.Cut(val, ";"); strings.EqualFold(strings.TrimSpace(id), s.core.AuthservID) {
				payload = val
				break
			}
		}
	}
	if payload == "" {
		payload = s.core.AuthservID + "; none"
	}
	fields := make([]arc.Field, len(h))
	for i, f := range h {
		fields[i] = arc.Field{Name: f.Name, Value: f.Value}
	}
	set, err := s.sealer.Seal(fields, m.BodyReader(), chain, payload, s.now())
	if s.metrics != nil {
		s.metrics.ARCSealed(SealName, err)
	}
	if err != nil {
		if s.log != nil {
			s.log.Warn("arc seal failed", "queue_id", m.QueueID, "error", err)
		}
		return nil, nil
	}
	out := make([]message.Field, len(set))
	for i, f := range set {
		out[i] = message.Field{Name: f.Name, Value: f.Value}
	}
	return out, nil
}

func (s *sealStep) forwarded(m *message.Message) bool {
	for _, r := range m.Rcpts {
		if s.fw.OffSite(r) {
			return true
		}
	}
	return false
}
