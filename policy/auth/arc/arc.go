// Package arc verifies and adds Authenticated Received Chain header
// fields (RFC 8617).
//
// An ARC set is three header fields with the same instance i=:
// ARC-Authentication-Results (AAR, the Authentication-Results the
// handler saw), ARC-Message-Signature (AMS, a DKIM signature of the
// message, RFC 6376 without v= and with i= the instance) and ARC-Seal
// (AS, a signature over the AAR, AMS and AS of every set up to its own,
// with cv= the chain status that handler found).
//
// Verify follows RFC 8617 §5.2: at most 50 sets, exactly one field of each
// kind per instance, instances 1..N without gaps, cv=none at i=1 and
// cv=pass after it; only the newest AMS must validate (an intermediary
// may change the message, which breaks the older ones; the older ones are
// checked only to report header.oldest-pass, §5.2 step 6); every AS must
// validate. The result is none, pass or fail; temperror when a key could
// not be fetched for a temporary DNS reason. RFC 8617 has no permerror:
// a structure or syntax error makes the chain fail (§5.2 step 3).
//
// Seal adds our set on top (§5.1): the AAR carries our own
// authentication results, the AMS signs the message as it leaves us, the
// AS signs the whole chain with cv= the result of Verify. A chain whose
// newest seal already says cv=fail gets no further set (§5.1.2).
//
// Canonicalization (RFC 6376 §3.4) is implemented here: go-msgauth keeps
// its canonicalizers unexported. Both "simple" and "relaxed" are verified,
// rsa-sha256 and ed25519-sha256 (RFC 8463) seals too (RFC 8301 forbids
// rsa-sha1); we seal with relaxed/relaxed and rsa-sha256, the one
// algorithm every ARC verifier knows.
//
// The package depends only on dkimkey; the caller hands it the header
// fields, the body as a reader and a resolver.
package arc

import (
	"errors"
	"strconv"
	"strings"
)

// Header field names (RFC 8617 §4.1).
const (
	HeaderSeal        = "ARC-Seal"
	HeaderSignature   = "ARC-Message-Signature"
	HeaderAuthResults = "ARC-Authentication-Results"
)

// MaxSets is the largest number of ARC sets a message may carry
// (RFC 8617 §4.2.1).
const MaxSets = 50

// Result is the validation status of a chain, as reported in
// Authentication-Results with the method "arc" (RFC 8617 §10.1).
type Result string

// Results.
const (
	ResultNone      Result = "none"
	ResultPass      Result = "pass"
	ResultFail      Result = "fail"
	ResultTempError Result = "temperror"
)

// ChainStatus is the cv= value of an ARC-Seal (RFC 8617 §4.1.3).
type ChainStatus string

// Chain statuses.
const (
	CVNone ChainStatus = "none"
	CVPass ChainStatus = "pass"
	CVFail ChainStatus = "fail"
)

// Errors that explain a failed chain (Verification.Err wraps them).
var (
	ErrStructure       = errors.New("arc: broken chain structure")
	ErrSignatureSyntax = errors.New("arc: bad signature field")
	ErrBodyHash        = errors.New("arc: body hash mismatch")
	ErrSignature       = errors.New("arc: signature does not verify")
	ErrKey             = errors.New("arc: unusable key")
	ErrChainFailed     = errors.New("arc: chain already failed")
	ErrTooManySets     = errors.New("arc: too many ARC sets")
)

// Signer identifies who made a signature: d=, s=, a= and t= (0 when absent).
type Signer struct {
	Domain    string
	Selector  string
	Algorithm string
	Time      int64
}

// Set is one validated ARC set.
type Set struct {
	Instance    int
	CV          ChainStatus
	Seal        Signer // the ARC-Seal: the sealer is Seal.Domain
	Message     Signer // the ARC-Message-Signature
	AuthServID  string // of the AAR
	AuthResults string // the AAR after "i=N;", unfolded and trimmed
}

// Verification is the outcome of Verify.
type Verification struct {
	Result Result
	// Sets are the ARC sets in instance order (Sets[0] is i=1) when the
	// structure is valid, whatever the result.
	Sets []Set
	// OldestPass is the lowest instance whose AMS still validates when
	// an older one does not, 0 when all do (RFC 8617 §5.2 step 6). Only
	// meaningful when Result is pass.
	OldestPass int
	// Highest is the highest instance any ARC field claims, even in a
	// broken chain: a sealer adds Highest+1.
	Highest int
	// Err says why the result is not pass or none.
	Err error
}

// N returns the highest instance (0 without a valid chain).
func (v *Verification) N() int { return len(v.Sets) }

// parseInstance parses an i= value: 1*DIGIT in 1..MaxSets
// (RFC 8617 §4.2.1: instance-value = 1*2DIGIT, 1 to 50).
func parseInstance(s string) (int, bool) {
	if s == "" || len(s) > 2 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, _ := strconv.Atoi(s)
	return n, n >= 1 && n <= MaxSets
}

// validDomain checks d= as a DNS name: dot-separated labels of letters,
// digits, "-" and "_", none empty (RFC 6376 §3.5 d= is a domain-name).
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
