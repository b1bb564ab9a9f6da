package quarantine

import (
	"context"
	"errors"
	"io"
	"strings"
)

// Outcome is what the MTA must do once a message was kept for some of its
// recipients (store mode).
type Outcome struct {
	Item *Item
	// DeleteRcpts are the quarantined recipients, to remove from the
	// envelope (milter SMFIR_DELRCPT) so that the others still get the
	// message.
	DeleteRcpts []string
	// Discard: no recipient is left. The client already got its 250 (or
	// gets it now) and our copy is safe, so the MTA drops the message
	// (SMFIR_DISCARD) instead of delivering to an empty envelope.
	Discard bool
}

// Divert keeps the message for m.Recipients, a subset of rcpts (the
// whole envelope), and says which recipients to remove. It returns only
// once the copy is synced; an error (wrapping ErrUnavailable for the disk
// or the index) means nothing was kept and the message must be
// tempfailed, never delivered.
func (q *Quarantine) Divert(ctx context.Context, m Meta, rcpts []string, body io.Reader) (Outcome, error) {
	if len(m.Recipients) == 0 {
		return Outcome{}, errors.New("quarantine: no recipient to divert")
	}
	it, err := q.Put(ctx, m, body)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Item: it}
	left := 0
	for _, r := range rcpts {
		if it.Recipient(r) != nil {
			out.DeleteRcpts = append(out.DeleteRcpts, r)
		} else if strings.TrimSpace(r) != "" {
			left++
		}
	}
	out.Discard = left == 0
	return out, nil
}
