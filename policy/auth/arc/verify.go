package arc

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
)

// MinRSABits is the smallest RSA key accepted for verification
// (RFC 8301 §3.2: verifiers MUST be able to validate 1024 to 4096 bits;
// smaller keys are refused).
const MinRSABits = 1024

// sig is a parsed AMS or AS.
type sig struct {
	field    int // index in the header
	instance int
	algo     string
	b, bh    []byte
	domain   string
	selector string
	hc, bc   Canon
	headers  []string
	limit    int64
	cv       ChainStatus
	time     int64
}

func (s *sig) signer() Signer {
	return Signer{Domain: s.domain, Selector: s.selector, Algorithm: s.algo, Time: s.time}
}

// parseSig parses the tag-list of an AMS (seal=false) or AS (seal=true)
// and checks every tag ARC requires (RFC 8617 §4.1.2, §4.1.3).
func parseSig(value string, seal bool) (*sig, error) {
	tags, err := dkimkey.ParseTags(toCRLF(value))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignatureSyntax, err)
	}
	s := &sig{limit: -1, hc: CanonRelaxed}
	get := func(name string) (string, error) {
		v, ok := tags.Get(name)
		if !ok || v == "" {
			return "", fmt.Errorf("%w: %s= missing or empty", ErrSignatureSyntax, name)
		}
		return v, nil
	}
	v, err := get("i")
	if err != nil {
		return nil, err
	}
	var ok bool
	if s.instance, ok = parseInstance(v); !ok {
		return nil, fmt.Errorf("%w: i=%q", ErrSignatureSyntax, v)
	}
	if s.algo, err = get("a"); err != nil {
		return nil, err
	}
	if s.algo != "rsa-sha256" && s.algo != "ed25519-sha256" {
		// RFC 8301 §3.1: rsa-sha1 MUST NOT be used.
		return nil, fmt.Errorf("%w: a=%q", ErrSignatureSyntax, s.algo)
	}
	if v, err = get("b"); err != nil {
		return nil, err
	}
	if s.b, err = base64.StdEncoding.DecodeString(dkimkey.StripFWS(v)); err != nil || len(s.b) == 0 {
		return nil, fmt.Errorf("%w: b= is not base64", ErrSignatureSyntax)
	}
	if s.domain, err = get("d"); err != nil {
		return nil, err
	}
	if !validDomain(s.domain) {
		return nil, fmt.Errorf("%w: d=%q", ErrSignatureSyntax, s.domain)
	}
	if s.selector, err = get("s"); err != nil {
		return nil, err
	}
	if !validDomain(s.selector) {
		return nil, fmt.Errorf("%w: s=%q", ErrSignatureSyntax, s.selector)
	}
	if v, ok := tags.Get("t"); ok {
		t, err := strconv.ParseInt(v, 10, 64)
		if err != nil || t < 0 || strings.TrimLeft(v, "0123456789") != "" {
			return nil, fmt.Errorf("%w: t=%q", ErrSignatureSyntax, v)
		}
		s.time = t
	}
	if seal {
		// RFC 8617 §4.1.3: the AS has no h= (it signs the ARC sets) and
		// uses relaxed header canonicalization only.
		if _, ok := tags.Get("h"); ok {
			return nil, fmt.Errorf("%w: h= in ARC-Seal", ErrSignatureSyntax)
		}
		if v, err = get("cv"); err != nil {
			return nil, err
		}
		s.cv = ChainStatus(v)
		if s.cv != CVNone && s.cv != CVPass && s.cv != CVFail {
			return nil, fmt.Errorf("%w: cv=%q", ErrSignatureSyntax, v)
		}
		return s, nil
	}
	if v, err = get("bh"); err != nil {
		return nil, err
	}
	if s.bh, err = base64.StdEncoding.DecodeString(dkimkey.StripFWS(v)); err != nil || len(s.bh) != sha256.Size {
		return nil, fmt.Errorf("%w: bh= is not a base64 SHA-256 hash", ErrSignatureSyntax)
	}
	c, present := tags.Get("c")
	// QUIRK(arc): DKIM's default is simple/simple, but the ValiMail suite
	// (ams_fields_c_na) and dkimpy read an AMS without c= as
	// relaxed/relaxed, the only canonicalization ARC sealers use.
	if s.hc, s.bc, err = parseCanon(c, present, CanonRelaxed); err != nil {
		return nil, err
	}
	h, ok := tags.Get("h")
	if !ok {
		return nil, fmt.Errorf("%w: h= missing", ErrSignatureSyntax)
	}
	if dkimkey.StripFWS(h) != "" {
		for _, name := range strings.Split(h, ":") {
			name = strings.Trim(name, " \t\r\n")
			if name == "" {
				// An empty name ("from::to") names no field
				// (ValiMail ams_fields_h_mis_hdr passes).
				continue
			}
			if !validFieldName(name) {
				return nil, fmt.Errorf("%w: h= names %q", ErrSignatureSyntax, name)
			}
			// RFC 8617 §4.1.2: the ARC-Seal MUST NOT be signed by the AMS.
			if strings.EqualFold(name, HeaderSeal) {
				return nil, fmt.Errorf("%w: h= includes ARC-Seal", ErrSignatureSyntax)
			}
			s.headers = append(s.headers, name)
		}
	}
	if v, ok := tags.Get("l"); ok {
		l, err := strconv.ParseInt(v, 10, 64)
		if err != nil || l < 0 {
			return nil, fmt.Errorf("%w: l=%q", ErrSignatureSyntax, v)
		}
		s.limit = l
	}
	return s, nil
}

// aar is a parsed ARC-Authentication-Results.
type aar struct {
	field    int
	instance int
	servID   string
	payload  string
}

// parseAAR parses "i=N;" followed by an authres-payload (RFC 8617 §4.1.1).
func parseAAR(value string) (*aar, error) {
	v := strings.TrimLeft(unfold(value), " \t")
	rest, ok := strings.CutPrefix(v, "i=")
	if !ok {
		return nil, fmt.Errorf("%w: ARC-Authentication-Results does not start with i=", ErrSignatureSyntax)
	}
	num, payload, ok := strings.Cut(rest, ";")
	if !ok {
		return nil, fmt.Errorf("%w: ARC-Authentication-Results without \";\" after i=", ErrSignatureSyntax)
	}
	n, ok := parseInstance(strings.TrimRight(num, " \t"))
	if !ok {
		return nil, fmt.Errorf("%w: ARC-Authentication-Results i=%q", ErrSignatureSyntax, num)
	}
	payload = strings.TrimSpace(payload)
	id := payload
	if j := strings.IndexAny(id, "; \t"); j >= 0 {
		id = id[:j]
	}
	return &aar{instance: n, servID: id, payload: payload}, nil
}

func unfold(s string) string {
	return strings.NewReplacer("\r\n", "", "\n", "").Replace(s)
}

// chain is the parsed ARC header fields of a message, by instance
// (index 0 is i=1).
type chain struct {
	aars []*aar
	amss []*sig
	ass  []*sig
}

// highestInstance returns the highest i= among the parsable ARC fields.
func highestInstance(h []Field) int {
	n := 0
	for _, f := range h {
		name := strings.TrimRight(f.Name, " \t")
		var i int
		switch {
		case strings.EqualFold(name, HeaderAuthResults):
			if a, err := parseAAR(f.Value); err == nil {
				i = a.instance
			}
		case strings.EqualFold(name, HeaderSignature), strings.EqualFold(name, HeaderSeal):
			if tags, err := dkimkey.ParseTags(toCRLF(f.Value)); err == nil {
				v, _ := tags.Get("i")
				i, _ = parseInstance(v)
			}
		}
		n = max(n, i)
	}
	return n
}

// collect finds and parses the ARC sets and checks their structure
// (RFC 8617 §5.2 steps 1 to 3). It returns nil, nil without ARC fields.
func collect(h []Field) (*chain, error) {
	type slot struct{ aar, ams, as int }
	bySet := map[int]*slot{}
	at := func(i int) *slot {
		if bySet[i] == nil {
			bySet[i] = &slot{}
		}
		return bySet[i]
	}
	var c chain
	var aars []*aar
	var amss, ass []*sig
	var firstErr error
	count := 0
	for idx, f := range h {
		name := strings.TrimRight(f.Name, " \t")
		if count > 3*MaxSets {
			return nil, fmt.Errorf("%w: more than %d ARC header fields", ErrStructure, 3*MaxSets)
		}
		switch {
		case strings.EqualFold(name, HeaderAuthResults):
			count++
			a, err := parseAAR(f.Value)
			if err != nil {
				firstErr = firstOf(firstErr, err)
				continue
			}
			a.field = idx
			aars = append(aars, a)
			at(a.instance).aar++
		case strings.EqualFold(name, HeaderSignature), strings.EqualFold(name, HeaderSeal):
			count++
			seal := strings.EqualFold(name, HeaderSeal)
			s, err := parseSig(f.Value, seal)
			if err != nil {
				firstErr = firstOf(firstErr, fmt.Errorf("%s: %w", name, err))
				continue
			}
			s.field = idx
			if seal {
				ass = append(ass, s)
				at(s.instance).as++
			} else {
				amss = append(amss, s)
				at(s.instance).ams++
			}
		}
	}
	if count == 0 {
		return nil, nil
	}
	if count > 3*MaxSets {
		return nil, fmt.Errorf("%w: %d ARC header fields", ErrStructure, count)
	}
	// RFC 8617 §5.2 step 2: a chain whose newest seal says cv=fail has
	// failed, whatever else is wrong with it.
	var newest *sig
	for _, s := range ass {
		if newest == nil || s.instance > newest.instance {
			newest = s
		}
	}
	if newest != nil && newest.cv == CVFail {
		return nil, fmt.Errorf("%w: ARC-Seal i=%d says cv=fail", ErrChainFailed, newest.instance)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	n := len(bySet)
	for i := 1; i <= n; i++ {
		s := bySet[i]
		if s == nil {
			return nil, fmt.Errorf("%w: instances are not 1..%d", ErrStructure, n)
		}
		if s.aar != 1 || s.ams != 1 || s.as != 1 {
			return nil, fmt.Errorf("%w: instance %d has %d AAR, %d AMS, %d AS (want one each)", ErrStructure, i, s.aar, s.ams, s.as)
		}
	}
	c.aars, c.amss, c.ass = make([]*aar, n), make([]*sig, n), make([]*sig, n)
	for _, a := range aars {
		c.aars[a.instance-1] = a
	}
	for _, s := range amss {
		c.amss[s.instance-1] = s
	}
	for _, s := range ass {
		c.ass[s.instance-1] = s
	}
	// RFC 8617 §5.2 step 3: cv=none at i=1, pass after.
	for i, s := range c.ass {
		want := CVPass
		if i == 0 {
			want = CVNone
		}
		if s.cv != want {
			return nil, fmt.Errorf("%w: ARC-Seal i=%d has cv=%s, want %s", ErrStructure, i+1, s.cv, want)
		}
	}
	return &c, nil
}

func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// keyCache fetches each key once per message.
type keyCache struct {
	r    dkimkey.Resolver
	keys map[string]keyAnswer
}

type keyAnswer struct {
	rec *dkimkey.Record
	err error
}

func (k *keyCache) get(ctx context.Context, selector, domain string) (*dkimkey.Record, error) {
	name := strings.ToLower(dkimkey.RecordName(selector, domain))
	if a, ok := k.keys[name]; ok {
		return a.rec, a.err
	}
	rec, err := dkimkey.Lookup(ctx, k.r, selector, domain)
	k.keys[name] = keyAnswer{rec, err}
	return rec, err
}

// check verifies a signature over hashed with the key of s.
func (k *keyCache) check(ctx context.Context, s *sig, hashed []byte) error {
	rec, err := k.get(ctx, s.selector, s.domain)
	if err != nil {
		if dkimkey.IsTemporary(err) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrKey, err)
	}
	if !rec.AllowsHash("sha256") || !rec.AllowsEmail() {
		return fmt.Errorf("%w: key record %s excludes sha256 or email", ErrKey, dkimkey.RecordName(s.selector, s.domain))
	}
	switch s.algo {
	case "rsa-sha256":
		pub, ok := rec.PublicKey.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: a=%s with a %s key", ErrKey, s.algo, rec.KeyType)
		}
		if pub.N.BitLen() < MinRSABits {
			return fmt.Errorf("%w: RSA key of %d bits", ErrKey, pub.N.BitLen())
		}
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, s.b) != nil {
			return ErrSignature
		}
	case "ed25519-sha256":
		pub, ok := rec.PublicKey.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("%w: a=%s with a %s key", ErrKey, s.algo, rec.KeyType)
		}
		// RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data.
		if !ed25519.Verify(pub, hashed, s.b) {
			return ErrSignature
		}
	}
	return nil
}

// newVerification describes the sets of a well-formed chain.
func newVerification(c *chain) *Verification {
	n := len(c.ass)
	v := &Verification{Sets: make([]Set, n), Highest: n}
	for i := range n {
		v.Sets[i] = Set{
			Instance: i + 1, CV: c.ass[i].cv,
			Seal: c.ass[i].signer(), Message: c.amss[i].signer(),
			AuthServID: c.aars[i].servID, AuthResults: c.aars[i].payload,
		}
	}
	return v
}

// Verify validates the ARC chain of a message (RFC 8617 §5.2). h is the
// whole header in message order, body the body as it arrived. It never
// returns nil; a failure is a Result, with the reason in Err.
func Verify(ctx context.Context, r dkimkey.Resolver, h []Field, body io.Reader) *Verification {
	c, err := collect(h)
	if err != nil {
		return &Verification{Result: ResultFail, Highest: highestInstance(h), Err: err}
	}
	if c == nil {
		return &Verification{Result: ResultNone}
	}
	n := len(c.ass)
	v := newVerification(c)
	bodyHashes, err := hashBodies(c.amss, body)
	if err != nil {
		v.Result, v.Err = ResultTempError, fmt.Errorf("arc: reading the body: %w", err)
		return v
	}
	keys := &keyCache{r: r, keys: map[string]keyAnswer{}}
	fail := func(err error) *Verification {
		v.Result, v.Err = ResultFail, err
		if dkimkey.IsTemporary(err) {
			v.Result = ResultTempError
		}
		return v
	}
	// Step 4: the newest AMS must validate.
	if err := checkAMS(ctx, keys, h, c.amss[n-1], bodyHashes); err != nil {
		return fail(fmt.Errorf("ARC-Message-Signature i=%d: %w", n, err))
	}
	// Step 7: every AS, newest first.
	if err := checkSeals(ctx, keys, h, c); err != nil {
		return fail(err)
	}
	// Steps 5 and 6: oldest-pass, from N-1 down while AMS validate.
	oldest := 0
	for i := n - 1; i >= 1; i-- {
		if checkAMS(ctx, keys, h, c.amss[i-1], bodyHashes) != nil {
			oldest = i + 1
			break
		}
	}
	v.Result, v.OldestPass = ResultPass, oldest
	return v
}

// checkSeals validates every ARC-Seal, newest first (RFC 8617 §5.2 step 7).
func checkSeals(ctx context.Context, keys *keyCache, h []Field, c *chain) error {
	for i := len(c.ass); i >= 1; i-- {
		if err := keys.check(ctx, c.ass[i-1], sealHash(h, c, i)); err != nil {
			return fmt.Errorf("ARC-Seal i=%d: %w", i, err)
		}
	}
	return nil
}

// VerifySeals checks what Verify checks except the message signatures:
// the structure of the chain (§5.2 steps 1 to 3) and every ARC-Seal
// (step 7). The seals sign only ARC header fields, so they survive a
// change of the Subject or the body that breaks the newest AMS.
//
// It is for a sealer that validated the whole chain itself before the
// message was changed by a party it answers for, a mailing-list manager
// of its own domain that re-injects the message: a pass here says the
// chain it validated then is still the chain the message carries, and the
// sealer may state cv=pass (RFC 8617 §5.1.1 leaves the cv= to the
// sealer's validation, and the list hop and its MTA are one ADMD). On
// its own, a pass here says nothing about the message. The result is
// none, pass, fail or temperror as for Verify; OldestPass is 0.
func VerifySeals(ctx context.Context, r dkimkey.Resolver, h []Field) *Verification {
	c, err := collect(h)
	if err != nil {
		return &Verification{Result: ResultFail, Highest: highestInstance(h), Err: err}
	}
	if c == nil {
		return &Verification{Result: ResultNone}
	}
	v := newVerification(c)
	if err := checkSeals(ctx, &keyCache{r: r, keys: map[string]keyAnswer{}}, h, c); err != nil {
		v.Result, v.Err = ResultFail, err
		if dkimkey.IsTemporary(err) {
			v.Result = ResultTempError
		}
		return v
	}
	v.Result = ResultPass
	return v
}

type bodyKey struct {
	c     Canon
	limit int64
}

type bodyHash struct {
	sum  []byte
	long bool // the canonical body reached l=
}

// hashBodies reads the body once and hashes it for every (canonicalization,
// l=) pair the AMSes use.
func hashBodies(amss []*sig, body io.Reader) (map[bodyKey]bodyHash, error) {
	type run struct {
		h hash.Hash
		c *bodyCanon
	}
	runs := map[bodyKey]*run{}
	var ws []io.Writer
	for _, s := range amss {
		k := bodyKey{s.bc, s.limit}
		if runs[k] == nil {
			h := sha256.New()
			runs[k] = &run{h: h, c: newBodyCanon(s.bc, h, s.limit)}
			ws = append(ws, runs[k].c)
		}
	}
	if body == nil {
		body = strings.NewReader("")
	}
	if _, err := io.Copy(io.MultiWriter(ws...), body); err != nil {
		return nil, err
	}
	out := map[bodyKey]bodyHash{}
	for k, r := range runs {
		if err := r.c.Close(); err != nil {
			return nil, err
		}
		out[k] = bodyHash{sum: r.h.Sum(nil), long: k.limit < 0 || r.c.written >= k.limit}
	}
	return out, nil
}

// checkAMS validates one ARC-Message-Signature: its body hash, then its
// signature over the fields it names and itself (RFC 6376 §3.7).
func checkAMS(ctx context.Context, keys *keyCache, h []Field, s *sig, bodies map[bodyKey]bodyHash) error {
	bh := bodies[bodyKey{s.bc, s.limit}]
	if !bh.long {
		// RFC 6376 §6.1.3: an l= longer than the body fails.
		return fmt.Errorf("%w: l= longer than the body", ErrBodyHash)
	}
	if string(bh.sum) != string(s.bh) {
		return ErrBodyHash
	}
	return keys.check(ctx, s, signatureHash(h, s))
}

// signatureHash hashes the header fields named by h= (each name taking
// the next instance from the bottom, RFC 6376 §5.4.2; a name with no
// instance left contributes nothing) and then the signature field itself
// with an empty b= and without its CRLF. The signature field is not a
// candidate for its own h= (it did not exist when it was made).
func signatureHash(h []Field, s *sig) []byte {
	d := sha256.New()
	used := map[string]int{}
	for _, name := range s.headers {
		key := strings.ToLower(name)
		skip := used[key]
		for i := len(h) - 1; i >= 0; i-- {
			if i == s.field || !strings.EqualFold(strings.TrimRight(h[i].Name, " \t"), name) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			io.WriteString(d, canonHeader(s.hc, h[i].Name, h[i].Value))
			break
		}
		used[key]++
	}
	self := canonHeader(s.hc, h[s.field].Name, stripB(h[s.field].Value))
	io.WriteString(d, strings.TrimSuffix(self, "\r\n"))
	return d.Sum(nil)
}

// sealHash hashes what the ARC-Seal of instance i signs: AAR, AMS and AS
// of every set from 1 to i, relaxed, the AS of instance i last with an
// empty b= and no CRLF (RFC 8617 §5.1.1).
func sealHash(h []Field, c *chain, i int) []byte {
	d := sha256.New()
	for k := 0; k < i; k++ {
		for _, idx := range []int{c.aars[k].field, c.amss[k].field} {
			io.WriteString(d, canonHeader(CanonRelaxed, h[idx].Name, h[idx].Value))
		}
		f := h[c.ass[k].field]
		if k < i-1 {
			io.WriteString(d, canonHeader(CanonRelaxed, f.Name, f.Value))
			continue
		}
		io.WriteString(d, strings.TrimSuffix(canonHeader(CanonRelaxed, f.Name, stripB(f.Value)), "\r\n"))
	}
	return d.Sum(nil)
}
