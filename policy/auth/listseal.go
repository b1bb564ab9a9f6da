package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/arc"
	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Sealing the mail a mailing-list manager of ours re-injects
// ([auth.arc] list_servers, list_server_users).
//
// A list receives a message through us (we verify SPF, DKIM, DMARC and
// ARC and record them in our Authentication-Results), then changes it (a
// Subject tag, a footer) and hands it back for distribution. The changes
// break the author's DKIM signature and the newest AMS of any chain, so
// the receivers of the list's copy depend on our ARC set, and it must say
// what we verified when the list received the message, which is what an
// ARC-Authentication-Results of a list is for (RFC 8617 §4.1.1, §7.1:
// "the results of the authentication checks performed by the
// intermediary when it received the message"); the results of the
// re-injection hop itself only say that 127.0.0.1 is not in the
// author's SPF record.
//
// Our Authentication-Results of the arrival travel with the message
// through the list (RFC 8601 §5: we removed any copy with our authserv-id
// when it arrived from outside, so the one the list hands back is ours).
// The step takes the topmost one from the header as the list re-injects
// it (the pipeline removes it from the copy that leaves: it claims our
// authserv-id) and uses it as the AAR payload, arc= included. The cv= of
// our seal follows the chain status recorded then:
//
//   - the chain still verifies now (the list changed nothing, or sealed
//     its own change): cv= from this verification;
//   - arc=pass on arrival and the chain fails now: the list's change broke
//     the newest AMS. If every seal still verifies (arc.VerifySeals: the
//     ARC fields are the ones we verified), cv=pass, since the list and
//     this MTA are one ADMD that validated the chain on arrival (§5.1.1);
//     a broken seal means the ARC fields were changed: cv=fail;
//   - arc=fail or arc=none on arrival: as the chain verifies now (a
//     chain that appeared after the arrival is not vouched for);
//   - arc=temperror, or no arc= recorded (the arc check was off): no
//     seal, the status is unknown; counted as an error.
//
// A re-injection without our Authentication-Results (a post that never
// arrived through us, a notice the list writes itself) is sealed with the
// results and chain status of this hop: that is all we know of it.
//
// The list must receive its mail only through mailwarden, or a forged
// Authentication-Results with our authserv-id would reach the AAR.

// ListSealName is the name of the step that seals list re-injections.
const ListSealName = "arc_list_seal"

// ErrListChainUnknown reports a re-injection whose arrival recorded no
// usable chain status.
var ErrListChainUnknown = errors.New("auth: no ARC status recorded when the list received the message")

// SealerOf returns the ARC sealer of [auth.arc] seal_key, an RSA key of
// [dkim_sign]; nil when seal_key is "".
func SealerOf(cfg *policy.Config) (*arc.Sealer, error) {
	name := ConfigOf(cfg).ARC.SealKey
	if name == "" {
		return nil, nil
	}
	tab, err := sign.NewTable(SignConfigOf(cfg).TableConfig(), LoadKeys)
	if err != nil {
		return nil, err
	}
	k := tab.Key(name)
	if k == nil || k.Ed25519() {
		return nil, fmt.Errorf("auth: [auth.arc] seal_key %q is not an RSA key of [dkim_sign]", name)
	}
	return &arc.Sealer{Domain: k.Domain, Selector: k.Selector, Key: k.Signer}, nil
}

// SealMetrics is the metrics seam of sealing (the daemon's metrics
// implement it: mailwarden_arc_seal_total{step,status}).
type SealMetrics interface {
	ARCSealed(step string, err error)
}

// listSealStep seals list re-injections at the end of the message (a
// policy.Finisher). A sealing error delivers the message unsealed
// ("arc seal failed" in the log, counted).
type listSealStep struct {
	core    *policy.Config
	arc     *ARCConfig
	keys    dkimkey.Resolver // seal keys, for VerifySeals
	sealer  *arc.Sealer
	log     *slog.Logger
	metrics SealMetrics // nil: none
	now     func() time.Time
}

func newListSealStep(a *authenticator, env *policy.Env) (*listSealStep, error) {
	s, err := SealerOf(env.Config)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("auth: [auth.arc] list_servers needs seal_key")
	}
	sm, _ := env.Metrics.(SealMetrics)
	return &listSealStep{core: a.core, arc: &a.cfg.ARC, keys: a.resolver, sealer: s, log: a.log, metrics: sm, now: time.Now}, nil
}

func (s *listSealStep) Name() string { return ListSealName }

// Check is never called: the pipeline runs a Finisher only at the end.
func (s *listSealStep) Check(context.Context, *message.Message, policy.Results) (policy.Result, error) {
	return policy.Result{Status: policy.StatusNone}, nil
}

// Finish adds our ARC set to a list re-injection.
func (s *listSealStep) Finish(ctx context.Context, m *message.Message, h message.Header, v *policy.Verdict) ([]message.Field, error) {
	if !s.arc.FromListServer(m) {
		return nil, nil
	}
	r, ok := v.Result(ARC)
	hop, _ := r.Data.(*arc.Verification)
	if !ok || hop == nil {
		return nil, nil // the arc check did not run: no cv= to state
	}
	fields := make([]arc.Field, len(h))
	for i, f := range h {
		fields[i] = arc.Field{Name: f.Name, Value: f.Value}
	}
	payload, arrived := ArrivalResults(m.Header, s.core.AuthservID)
	if !arrived {
		payload, _ = ArrivalResults(h, s.core.AuthservID) // this hop's, as it leaves
	}
	if payload == "" {
		payload = s.core.AuthservID + "; none"
	}
	chain := hop
	var err error
	if arrived {
		chain, err = s.listChain(ctx, fields, hop, payload)
	}
	var set []arc.Field
	if err == nil {
		set, err = s.sealer.Seal(fields, m.BodyReader(), chain, payload, s.now())
	}
	if s.metrics != nil {
		s.metrics.ARCSealed(ListSealName, err)
	}
	if err != nil {
		if s.log != nil {
			s.log.Warn("arc seal failed", "queue_id", m.QueueID, "step", ListSealName, "error", err)
		}
		return nil, nil
	}
	if s.log != nil {
		s.log.Debug("arc sealed", "queue_id", m.QueueID, "step", ListSealName, "arrival", arrived, "chain_now", string(hop.Result), "cv_from", string(chain.Result))
	}
	out := make([]message.Field, len(set))
	for i, f := range set {
		out[i] = message.Field{Name: f.Name, Value: f.Value}
	}
	return out, nil
}

// listChain decides the chain our seal vouches for, from the chain as it
// verifies now (hop) and the arc= we recorded on arrival (see the
// comment at the top of this file).
func (s *listSealStep) listChain(ctx context.Context, h []arc.Field, hop *arc.Verification, arrival string) (*arc.Verification, error) {
	if hop.Result == arc.ResultPass {
		return hop, nil
	}
	switch ARCResultOf(arrival) {
	case arc.ResultPass:
		seals := arc.VerifySeals(ctx, s.keys, h)
		switch seals.Result {
		case arc.ResultPass:
			return seals, nil
		case arc.ResultTempError:
			return nil, seals.Err
		case arc.ResultNone:
			// The list removed the ARC fields: a new chain starts.
			return seals, nil
		}
		// The seals we verified on arrival no longer verify: cv=fail.
		return &arc.Verification{Result: arc.ResultFail, Highest: seals.Highest, Err: seals.Err}, nil
	case arc.ResultFail, arc.ResultNone:
		return hop, nil
	}
	return nil, ErrListChainUnknown
}

// ArrivalResults returns the payload of the topmost
// Authentication-Results of authservID in h, unfolded, with runs of
// white space made one space: "mx.example.org; spf=pass ...".
func ArrivalResults(h message.Header, authservID string) (string, bool) {
	id := strings.TrimSuffix(authservID, ".")
	for _, f := range h {
		if !strings.EqualFold(f.Name, "Authentication-Results") {
			continue
		}
		val := strings.Join(strings.Fields(message.Unfold(f.Value)), " ")
		if first, _, _ := strings.Cut(val, ";"); strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(first), "."), id) {
			return val, true
		}
	}
	return "", false
}

// ARCResultOf returns the arc= result of an Authentication-Results
// payload ("" when it has none). RFC 8601 §2.2: results are separated by
// ";", each starting with method=result.
func ARCResultOf(payload string) arc.Result {
	parts := strings.Split(payload, ";")
	for _, p := range parts[1:] {
		fs := strings.Fields(p)
		if len(fs) == 0 {
			continue
		}
		if k, v, ok := strings.Cut(fs[0], "="); ok && strings.EqualFold(k, "arc") {
			return arc.Result(strings.ToLower(v))
		}
	}
	return ""
}
