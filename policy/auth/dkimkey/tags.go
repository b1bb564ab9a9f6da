// Package dkimkey parses the two DKIM syntaxes that DKIM signing, DKIM key
// management and ARC (RFC 8617, which reuses them) share: tag=value lists
// (RFC 6376 §3.2) and public key records published in DNS under
// selector._domainkey.domain (RFC 6376 §3.6.1, RFC 8463 for Ed25519). It
// also fetches a key record through a resolver, telling a temporary DNS
// failure from a missing or broken record (RFC 6376 §6.1.2).
//
// The package imports nothing from the rest of mailwarden.
package dkimkey

import (
	"errors"
	"fmt"
	"strings"
)

// ErrTagSyntax reports a tag-list that does not follow RFC 6376 §3.2.
var ErrTagSyntax = errors.New("dkimkey: tag-list syntax error")

// Tag is one tag=value pair, its value with folding white space removed
// at both ends (internal white space is kept: RFC 6376 §3.2 allows it
// between the parts of a value, and each tag decides what it means).
type Tag struct {
	Name  string
	Value string
}

// Tags is a parsed tag-list, in the order of the field.
type Tags []Tag

// Get returns the value of the tag named name (tag names are case
// sensitive, RFC 6376 §3.2) and whether it is present.
func (t Tags) Get(name string) (string, bool) {
	for _, p := range t {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// ParseTags parses a tag-list strictly:
//
//	tag-list  =  tag-spec *( ";" tag-spec ) [ ";" ]
//	tag-spec  =  [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//	tag-name  =  ALPHA *ALNUMPUNC
//	tag-value =  [ tval *( 1*(WSP / FWS) tval ) ] ; tval = 1*VALCHAR
//
// An empty tag-spec (";;"), a tag without "=", a bad tag name, a byte
// outside VALCHAR and a duplicated tag are errors (RFC 6376 §3.2: "Tags
// with duplicate names MUST NOT occur within a single tag-list; if a tag
// name does occur more than once, the entire tag-list is invalid").
func ParseTags(s string) (Tags, error) {
	var tags Tags
	specs := strings.Split(s, ";")
	for i, spec := range specs {
		if isFWS(spec) {
			// Only the empty spec after a final ";" is allowed (and a
			// list that is entirely empty).
			if i == len(specs)-1 {
				break
			}
			return nil, fmt.Errorf("%w: empty tag-spec", ErrTagSyntax)
		}
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("%w: no \"=\" in %q", ErrTagSyntax, trimFWS(spec))
		}
		name = trimFWS(name)
		if !validTagName(name) {
			return nil, fmt.Errorf("%w: bad tag name %q", ErrTagSyntax, name)
		}
		value = trimFWS(value)
		for j := 0; j < len(value); j++ {
			c := value[j]
			if isWSP(c) || c == '\r' || c == '\n' {
				continue
			}
			// VALCHAR = %x21-3A / %x3C-7E ("=" is allowed inside a value).
			if c < 0x21 || c > 0x7e || c == ';' {
				return nil, fmt.Errorf("%w: bad character in tag %q", ErrTagSyntax, name)
			}
		}
		if _, dup := tags.Get(name); dup {
			return nil, fmt.Errorf("%w: duplicate tag %q", ErrTagSyntax, name)
		}
		tags = append(tags, Tag{Name: name, Value: value})
	}
	return tags, nil
}

// StripFWS removes all folding white space from a value, for tags whose
// value ignores it (b=, bh=, p=: RFC 6376 §3.5 "whitespace is ignored in
// this value").
func StripFWS(s string) string {
	if strings.IndexAny(s, " \t\r\n") < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isWSP(c) && c != '\r' && c != '\n' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func validTagName(n string) bool {
	if n == "" || !isAlpha(n[0]) {
		return false
	}
	for i := 1; i < len(n); i++ {
		c := n[i]
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isWSP(c byte) bool   { return c == ' ' || c == '\t' }

func isFWS(s string) bool { return trimFWS(s) == "" }

func trimFWS(s string) string { return strings.Trim(s, " \t\r\n") }
