package sign

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// Errors of FromAddress: messages we do not sign.
var (
	ErrNoFrom      = errors.New("sign: no From field")
	ErrSeveralFrom = errors.New("sign: several From fields or mailboxes")
	ErrFromSyntax  = errors.New("sign: unparsable From field")
)

// FromAddress returns the one author address of a message. A message
// with no From field, several From fields (RFC 5322 §3.6 allows one) or
// several mailboxes in it is not signed: which domain would the
// signature vouch for (RFC 7489 §6.6.1 treats such mail the same way)?
func FromAddress(h []Field) (string, error) {
	var value string
	n := 0
	for _, f := range h {
		if strings.EqualFold(strings.TrimRight(f.Name, " \t"), "From") {
			n++
			value = f.Value
		}
	}
	switch {
	case n == 0:
		return "", ErrNoFrom
	case n > 1:
		return "", ErrSeveralFrom
	}
	value = strings.NewReplacer("\r\n", "", "\n", "").Replace(value)
	list, err := mail.ParseAddressList(value)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrFromSyntax, err)
	}
	if len(list) != 1 {
		return "", ErrSeveralFrom
	}
	addr := list[0].Address
	if i := strings.LastIndexByte(addr, '@'); i <= 0 || i == len(addr)-1 {
		return "", fmt.Errorf("%w: %q has no domain", ErrFromSyntax, addr)
	}
	return addr, nil
}
