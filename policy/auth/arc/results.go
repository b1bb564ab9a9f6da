package arc

import (
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// AuthResult returns our Authentication-Results entry for the chain:
// "arc=<result>", with header.oldest-pass when an older AMS no longer
// validates (RFC 8617 §5.2 step 6; absent means 0, all validate) and
// smtp.remote-ip when remoteIP is not empty.
//
// QUIRK(go-msgauth): authres.Format writes an *authres.ARCResult without
// its method name (v0.7.0), so this is a GenericResult.
func (v *Verification) AuthResult(remoteIP string) *authres.GenericResult {
	r := &authres.GenericResult{Method: "arc", Value: authres.ResultValue(v.Result), Params: map[string]string{}}
	if v.Result == ResultPass && v.OldestPass > 0 {
		r.Params["header.oldest-pass"] = strconv.Itoa(v.OldestPass)
	}
	if remoteIP != "" {
		r.Params["smtp.remote-ip"] = remoteIP
	}
	return r
}

// Trusted returns the sets of a passing chain sealed by trusted sealers,
// newest first, walking back from instance N while the sealer (the AS
// d=) is trusted; nil when the chain does not pass or its newest sealer
// is not trusted. A set sealed by an untrusted sealer ends the walk: what
// it says about older sets is not evidence.
func (v *Verification) Trusted(trusted func(sealer string) bool) []Set {
	if v.Result != ResultPass {
		return nil
	}
	var out []Set
	for i := len(v.Sets) - 1; i >= 0; i-- {
		if !trusted(strings.ToLower(v.Sets[i].Seal.Domain)) {
			break
		}
		out = append(out, v.Sets[i])
	}
	return out
}

// Results parses the AAR of the set: the results that sealer recorded
// (RFC 8617 §4.1.1: an Authentication-Results payload). Unknown methods
// come back as *authres.GenericResult; SPF, DKIM and DMARC as their types.
func (s Set) Results() ([]authres.Result, error) {
	_, rs, err := authres.Parse(s.AuthResults)
	return rs, err
}
