package sign

import (
	"crypto"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// Field is one header field: the name and everything after the colon,
// folds kept (LF or CRLF).
type Field struct {
	Name  string
	Value string
}

// Header field choice (RFC 6376 §5.4.1, §8.15).
var (
	// oversigned are named once more than present, absent ones once.
	oversigned = []string{"From", "To", "Cc", "Subject", "Reply-To"}
	// ifPresent are named as many times as present.
	ifPresent = []string{"Date", "Message-ID", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding", "Sender", "In-Reply-To", "References"}
	// prefixes of families signed when present.
	ifPresentPrefix = []string{"List-", "Resent-"}
)

// HeaderKeys returns the h= list for a message header.
func HeaderKeys(h []Field) []string {
	count := map[string]int{}
	var order []string // lower-case names in header order, for the families
	for _, f := range h {
		n := strings.ToLower(strings.TrimRight(f.Name, " \t"))
		if count[n] == 0 {
			order = append(order, n)
		}
		count[n]++
	}
	var keys []string
	add := func(name string, n int) {
		for range n {
			keys = append(keys, name)
		}
	}
	for _, n := range oversigned {
		add(n, count[strings.ToLower(n)]+1)
	}
	for _, n := range ifPresent {
		add(n, count[strings.ToLower(n)])
	}
	for _, n := range order {
		for _, p := range ifPresentPrefix {
			if strings.HasPrefix(n, strings.ToLower(p)) {
				add(n, count[n])
			}
		}
	}
	return keys
}

// Signature is one DKIM-Signature made by Sign.
type Signature struct {
	Key *Key
	// Value is the field value without the name, folded with LF and a
	// tab and without any CR, as a milter passes header values (the MTA
	// writes the CRLF). Insert it at the top of the header.
	Value string
}

// Sign signs the message (h is the final header, body the final body)
// with each key, in order, at time now, with x= now+expire. The body is
// read once. Signatures are independent: the later ones do not cover
// the earlier ones.
func Sign(h []Field, body io.Reader, keys []*Key, now time.Time, expire time.Duration) ([]Signature, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if expire <= 0 {
		expire = DefaultExpire
	}
	hk := HeaderKeys(h)
	signers := make([]*dkim.Signer, len(keys))
	ws := make([]io.Writer, len(keys))
	for i, k := range keys {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			Hash:                   crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             hk,
			Expiration:             now.Add(expire),
		})
		if err != nil {
			closeAll(signers[:i])
			return nil, fmt.Errorf("%w: key %q: %w", ErrSignFailure, k.Name, err)
		}
		signers[i], ws[i] = s, s
	}
	w := io.MultiWriter(ws...)
	err := writeMessage(w, h, body)
	if err != nil {
		closeAll(signers)
		return nil, fmt.Errorf("%w: %w", ErrSignFailure, err)
	}
	out := make([]Signature, 0, len(keys))
	for i, s := range signers {
		if err := s.Close(); err != nil {
			closeAll(signers[i+1:])
			return nil, fmt.Errorf("%w: key %q: %w", ErrSignFailure, keys[i].Name, err)
		}
		out = append(out, Signature{Key: keys[i], Value: milterValue(s.Signature())})
	}
	return out, nil
}

func closeAll(ss []*dkim.Signer) {
	for _, s := range ss {
		if s != nil {
			s.Close()
		}
	}
}

// writeMessage writes the header (CRLF line ends) and the body.
func writeMessage(w io.Writer, h []Field, body io.Reader) error {
	var b strings.Builder
	for _, f := range h {
		v := strings.ReplaceAll(f.Value, "\r\n", "\n")
		b.WriteString(f.Name + ":" + strings.ReplaceAll(v, "\n", "\r\n") + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if body == nil {
		return nil
	}
	_, err := io.Copy(w, body)
	return err
}

// milterValue turns go-msgauth's "DKIM-Signature: ...\r\n" into a milter
// header value. The signature was made with relaxed header
// canonicalization, which reads any fold as one space, so refolding
// cannot break it.
//
// QUIRK(postfix): a milter header value must fold with a bare LF; a CR in
// it ends up in the queue file as part of the line.
func milterValue(field string) string {
	_, v, _ := strings.Cut(field, ":")
	v = strings.TrimSpace(v)
	lines := strings.Split(strings.ReplaceAll(v, "\r\n", "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "\n\t")
}
