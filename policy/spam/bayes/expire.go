package bayes

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Expiring bounds a token store the way SpamAssassin's Bayes expiry does
// (bayes_expiry_max_db_size, then down to 75 %): it remembers when each
// token was last learned or last seen in a scanned message, and Expire
// forgets the least recently seen tokens once there are more than a
// maximum. Forgetting a token removes its whole count; the message totals
// stay (the classifier's ratios are per message learned). The time is
// passed in (Now for reads and learns, Expire's own argument), so tests
// need no clock.
//
// It knows the tokens that went through it: wrap the store of the process
// that learns (the daemon with autolearn, `learn`), in front of any
// TokenStore.
type Expiring struct {
	Inner TokenStore
	Now   func() time.Time

	mu   sync.Mutex
	last map[string]int64 // unix seconds
}

// NewExpiring wraps s.
func NewExpiring(s TokenStore, now func() time.Time) *Expiring {
	return &Expiring{Inner: s, Now: now, last: map[string]int64{}}
}

// Counts implements TokenStore; tokens the store knows count as seen now.
func (e *Expiring) Counts(ctx context.Context, tokens []string) ([]Count, Count, error) {
	counts, total, err := e.Inner.Counts(ctx, tokens)
	if err != nil {
		return counts, total, err
	}
	now := e.Now().Unix()
	e.mu.Lock()
	for i, c := range counts {
		if c.Spam > 0 || c.Ham > 0 {
			e.last[tokens[i]] = now
		}
	}
	e.mu.Unlock()
	return counts, total, nil
}

// Add implements TokenStore; learned tokens count as seen now.
func (e *Expiring) Add(ctx context.Context, deltas map[string]Count, msgs Count) error {
	if err := e.Inner.Add(ctx, deltas, msgs); err != nil {
		return err
	}
	now := e.Now().Unix()
	e.mu.Lock()
	for t, d := range deltas {
		if d.Spam > 0 || d.Ham > 0 {
			e.last[t] = now
		}
	}
	e.mu.Unlock()
	return nil
}

// Seen implements TokenStore.
func (e *Expiring) Seen(ctx context.Context, id string) (Class, error) { return e.Inner.Seen(ctx, id) }

// SetSeen implements TokenStore.
func (e *Expiring) SetSeen(ctx context.Context, id string, c Class) error {
	return e.Inner.SetSeen(ctx, id, c)
}

// Len is the number of tokens tracked.
func (e *Expiring) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.last)
}

// Expire forgets, when more than max tokens are tracked, the least
// recently seen ones until 75 % of max remain, never a token seen after
// now minus minAge (recent evidence is kept even above the bound). Ties
// go by token, so the outcome is deterministic. It returns how many
// tokens it forgot.
func (e *Expiring) Expire(ctx context.Context, now time.Time, max int, minAge time.Duration) (int, error) {
	e.mu.Lock()
	if len(e.last) <= max {
		e.mu.Unlock()
		return 0, nil
	}
	type aged struct {
		tok string
		at  int64
	}
	all := make([]aged, 0, len(e.last))
	for t, at := range e.last {
		all = append(all, aged{t, at})
	}
	e.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].at != all[j].at {
			return all[i].at < all[j].at
		}
		return all[i].tok < all[j].tok
	})
	keep := max * 3 / 4
	cutoff := now.Add(-minAge).Unix()
	var drop []string
	for _, a := range all[:len(all)-keep] {
		if a.at > cutoff {
			break
		}
		drop = append(drop, a.tok)
	}
	if len(drop) == 0 {
		return 0, nil
	}
	counts, _, err := e.Inner.Counts(ctx, drop)
	if err != nil {
		return 0, err
	}
	deltas := make(map[string]Count, len(drop))
	for i, t := range drop {
		if c := counts[i]; c.Spam != 0 || c.Ham != 0 {
			deltas[t] = Count{Spam: -c.Spam, Ham: -c.Ham}
		}
	}
	if err := e.Inner.Add(ctx, deltas, Count{}); err != nil {
		return 0, err
	}
	e.mu.Lock()
	for _, t := range drop {
		// Seen again while we expired it: keep tracking it.
		if e.last[t] <= cutoff {
			delete(e.last, t)
		}
	}
	e.mu.Unlock()
	return len(drop), nil
}
