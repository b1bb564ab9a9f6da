package quarantine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// next lists the allowed state changes: a held copy is released, deleted
// or expires; a released one can still be deleted or expire (its record);
// deleted and expired are final.
var next = map[State][]State{
	StateHeld:     {StateReleased, StateDeleted, StateExpired},
	StateReleased: {StateDeleted, StateExpired},
}

// transition moves rcpt's copy of it to state to.
func transition(it *Item, rcpt string, to State, by string, now time.Time) error {
	r := it.Recipient(rcpt)
	if r == nil {
		return fmt.Errorf("%w: %s is not a recipient of %s", ErrNotFound, rcpt, it.ID)
	}
	if !slices.Contains(next[r.State], to) {
		return &TransitionError{ID: it.ID, Rcpt: r.Addr, From: r.State, To: to}
	}
	r.State, r.By, r.At = to, by, now.UTC()
	return nil
}

// targets returns the recipients an action applies to: rcpt, or when rcpt
// is empty every recipient the actor may act for in state from.
func targets(it *Item, a Actor, rcpt string, from State) []string {
	if rcpt != "" {
		return []string{rcpt}
	}
	var out []string
	for _, r := range it.Recipients {
		if r.State == from && (a.Role != RoleUser || a.owns(r.Addr)) {
			out = append(out, r.Addr)
		}
	}
	return out
}

// Release re-injects the message for rcpt (every held recipient the
// actor may act for when rcpt is "") and marks those copies released. A
// virus item is released by an admin only, and audited.
func (q *Quarantine) Release(ctx context.Context, id, rcpt string, a Actor) (*Item, error) {
	q.act.Lock()
	defer q.act.Unlock()
	it, err := q.Get(ctx, id, a)
	if err != nil {
		return nil, err
	}
	rcpts := targets(it, a, rcpt, StateHeld)
	if len(rcpts) == 0 {
		return nil, fmt.Errorf("%w: nothing held for you in %s", ErrNotFound, id)
	}
	for _, r := range rcpts {
		if err := a.May(ActionRelease, it, r); err != nil {
			return nil, err
		}
		if rr := it.Recipient(r); rr == nil || rr.State != StateHeld {
			if rr == nil {
				return nil, fmt.Errorf("%w: %s is not a recipient of %s", ErrNotFound, r, id)
			}
			return nil, &TransitionError{ID: id, Rcpt: r, From: rr.State, To: StateReleased}
		}
	}
	switch it.Mode {
	case ModeHold:
		if q.cfg.Hold == nil {
			return nil, errors.New("quarantine: hold mode is not configured")
		}
		// QUIRK(postfix): postsuper -H releases the whole message, so every
		// held recipient is released with it.
		if err := q.cfg.Hold.Release(ctx, it.QueueID); err != nil {
			return nil, err
		}
		rcpts = targets(it, Actor{Role: RoleAdmin}, "", StateHeld)
	default:
		if q.cfg.Releaser == nil {
			return nil, errors.New("quarantine: no releaser configured")
		}
		for _, r := range rcpts {
			// Claim the copy first: the index update is atomic (also
			// across daemons sharing a Redis index), so two clicks, or two
			// pages, deliver once. A failed delivery gives the claim back.
			prev := *it.Recipient(r)
			if it, err = q.setState(ctx, id, []string{r}, StateReleased, a.Name); err != nil {
				return nil, err
			}
			if err := q.deliver(ctx, it, r, a.Name); err != nil {
				if _, rerr := q.cfg.Index.Update(ctx, id, func(x *Item) error {
					if xr := x.Recipient(r); xr != nil && xr.State == StateReleased && xr.By == a.Name {
						*xr = prev
					}
					return nil
				}); rerr != nil {
					err = errors.Join(err, rerr)
				}
				return nil, err
			}
			q.audit(ctx, a, ActionRelease, it, r, "")
		}
		return it, q.purgeIfDone(ctx, it)
	}
	it, err = q.setState(ctx, id, rcpts, StateReleased, a.Name)
	if err != nil {
		return nil, err
	}
	for _, r := range rcpts {
		q.audit(ctx, a, ActionRelease, it, r, "hold queue "+it.QueueID)
	}
	return it, nil
}

func (q *Quarantine) deliver(ctx context.Context, it *Item, rcpt, by string) error {
	rc, err := q.open(it)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := q.cfg.Releaser.Release(ctx, it, rcpt, rc, by); err != nil {
		return fmt.Errorf("quarantine: releasing %s to %s: %w", it.ID, rcpt, err)
	}
	return nil
}

// Delete marks rcpt's copy (every copy the actor may act for when rcpt
// is "") deleted; the stored message goes when no copy is held. In hold
// mode the message is removed from the MTA's queue once no recipient is
// held.
func (q *Quarantine) Delete(ctx context.Context, id, rcpt string, a Actor) (*Item, error) {
	q.act.Lock()
	defer q.act.Unlock()
	it, err := q.Get(ctx, id, a)
	if err != nil {
		return nil, err
	}
	rcpts := targets(it, a, rcpt, StateHeld)
	if len(rcpts) == 0 {
		return nil, fmt.Errorf("%w: nothing held for you in %s", ErrNotFound, id)
	}
	for _, r := range rcpts {
		if err := a.May(ActionDelete, it, r); err != nil {
			return nil, err
		}
	}
	it, err = q.setState(ctx, id, rcpts, StateDeleted, a.Name)
	if err != nil {
		return nil, err
	}
	for _, r := range rcpts {
		q.audit(ctx, a, ActionDelete, it, r, "")
	}
	return it, q.purgeIfDone(ctx, it)
}

func (q *Quarantine) setState(ctx context.Context, id string, rcpts []string, to State, by string) (*Item, error) {
	now := q.cfg.Now()
	return q.cfg.Index.Update(ctx, id, func(it *Item) error {
		for _, r := range rcpts {
			if err := transition(it, r, to, by, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// purgeIfDone removes the stored copy (or the held message) once no
// recipient is held.
func (q *Quarantine) purgeIfDone(ctx context.Context, it *Item) error {
	if it.Held() || !it.Purged.IsZero() {
		return nil
	}
	switch it.Mode {
	case ModeHold:
		if !slices.ContainsFunc(it.Recipients, func(r Recipient) bool { return r.State == StateDeleted || r.State == StateExpired }) {
			return nil // released: Postfix delivered it
		}
		if q.cfg.Hold != nil {
			if err := q.cfg.Hold.Delete(ctx, it.QueueID); err != nil {
				return err
			}
		}
	default:
		if err := os.Remove(q.path(it.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return &StoreError{"remove", err}
		}
	}
	now := q.cfg.Now().UTC()
	_, err := q.cfg.Index.Update(ctx, it.ID, func(x *Item) error {
		x.Purged, x.Stored = now, 0
		return nil
	})
	it.Purged, it.Stored = now, 0
	return err
}

// ExpireReport is what one Expire run did.
type ExpireReport struct {
	Expired int   // items whose copy expired by age
	Capped  int   // items expired to stay under MaxBytes
	Removed int   // index records dropped after KeepRecord
	Bytes   int64 // bytes kept after the run
}

var systemExpiry = Actor{Name: "expiry", Role: RoleSystem}

// Expire is the retention job: it expires the copies older than their
// category's retention, then the oldest ones while the total exceeds
// MaxBytes, and drops index records KeepRecord after their copy went.
// The daemon runs it periodically (hourly is plenty).
func (q *Quarantine) Expire(ctx context.Context) (ExpireReport, error) {
	q.act.Lock()
	defer q.act.Unlock()
	now := q.cfg.Now()
	var rep ExpireReport
	var live, old []*Item
	var drop []string
	err := q.cfg.Index.Scan(ctx, func(it *Item) bool {
		switch {
		case !it.Purged.IsZero() || !it.Held():
			if !it.Purged.IsZero() && !now.Before(it.Purged.Add(q.cfg.KeepRecord)) {
				drop = append(drop, it.ID)
			}
		case !now.Before(it.Time.Add(q.Retention(it.Category))):
			old = append(old, it)
		default:
			live = append(live, it)
		}
		return true
	})
	if err != nil {
		return rep, err
	}
	var errs []error
	expire := func(it *Item, why string) bool {
		held := targets(it, Actor{Role: RoleAdmin}, "", StateHeld)
		x, err := q.setState(ctx, it.ID, held, StateExpired, systemExpiry.Name)
		if err == nil {
			err = q.purgeIfDone(ctx, x)
		}
		if err != nil {
			errs = append(errs, err)
			return false
		}
		q.audit(ctx, systemExpiry, ActionExpire, x, strings.Join(held, ","), why)
		return true
	}
	for _, it := range old {
		if expire(it, "retention") {
			rep.Expired++
		}
	}
	for _, it := range live {
		rep.Bytes += it.Stored
	}
	if q.cfg.MaxBytes > 0 && rep.Bytes > q.cfg.MaxBytes {
		slices.SortFunc(live, func(x, y *Item) int { return x.Time.Compare(y.Time) })
		for _, it := range live {
			if rep.Bytes <= q.cfg.MaxBytes {
				break
			}
			if expire(it, "size cap") {
				rep.Capped++
				rep.Bytes -= it.Stored
			}
		}
	}
	if len(drop) > 0 {
		if err := q.cfg.Index.Remove(ctx, drop...); err != nil {
			errs = append(errs, err)
		} else {
			rep.Removed = len(drop)
		}
	}
	return rep, errors.Join(errs...)
}

// Stats describes what the quarantine holds, for metrics and `status`.
type Stats struct {
	Items      int              // items with a held copy
	Bytes      int64            // bytes on disk (compressed)
	Oldest     time.Time        // receipt time of the oldest held item
	ByCategory map[Category]int // held items per category
	ByState    map[State]int    // recipients per state (records kept)
}

// Stats scans the index.
func (q *Quarantine) Stats(ctx context.Context) (Stats, error) {
	s := Stats{ByCategory: map[Category]int{}, ByState: map[State]int{}}
	err := q.cfg.Index.Scan(ctx, func(it *Item) bool {
		for _, r := range it.Recipients {
			s.ByState[r.State]++
		}
		if !it.Held() {
			return true
		}
		s.Items++
		s.Bytes += it.Stored
		s.ByCategory[it.Category]++
		if s.Oldest.IsZero() || it.Time.Before(s.Oldest) {
			s.Oldest = it.Time
		}
		return true
	})
	return s, err
}
