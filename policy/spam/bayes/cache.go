package bayes

import (
	"context"
	"sync"
	"time"
)

// Cache keeps recently read token counts in memory in front of a shared
// TokenStore, so that a warm daemon reads the store only for tokens it has
// not seen lately. Counts may be up to TTL old, which moves a probability
// by a hair at most; what this process learns invalidates its entries at
// once. Its size is bounded: past Size entries it starts afresh.
type Cache struct {
	Inner TokenStore
	TTL   time.Duration
	Size  int
	Now   func() time.Time

	mu       sync.Mutex
	m        map[string]cached
	total    Count
	totalExp time.Time
}

type cached struct {
	c   Count
	exp time.Time
}

// NewCache wraps s.
func NewCache(s TokenStore, ttl time.Duration, size int) *Cache {
	return &Cache{Inner: s, TTL: ttl, Size: size, Now: time.Now, m: map[string]cached{}}
}

// Counts implements TokenStore.
func (c *Cache) Counts(ctx context.Context, tokens []string) ([]Count, Count, error) {
	now := c.Now()
	out := make([]Count, len(tokens))
	var miss []string
	var missIdx []int
	c.mu.Lock()
	for i, t := range tokens {
		if e, ok := c.m[t]; ok && now.Before(e.exp) {
			out[i] = e.c
			continue
		}
		miss = append(miss, t)
		missIdx = append(missIdx, i)
	}
	total, fresh := c.total, now.Before(c.totalExp)
	c.mu.Unlock()
	if len(miss) == 0 && fresh {
		return out, total, nil
	}
	got, total, err := c.Inner.Counts(ctx, miss)
	if err != nil {
		return nil, Count{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(miss) > c.Size {
		c.m = make(map[string]cached, len(miss))
	}
	exp := now.Add(c.TTL)
	for j, i := range missIdx {
		out[i] = got[j]
		c.m[miss[j]] = cached{got[j], exp}
	}
	c.total, c.totalExp = total, exp
	return out, total, nil
}

// Reset forgets every cached count and gives the memory back. A Table
// calls it once it answers from memory: the cache in front of its store
// served only the reads of the load.
func (c *Cache) Reset() {
	c.mu.Lock()
	c.m = map[string]cached{}
	c.totalExp = time.Time{}
	c.mu.Unlock()
}

// Add implements TokenStore and forgets the cached counts it changes.
func (c *Cache) Add(ctx context.Context, deltas map[string]Count, msgs Count) error {
	err := c.Inner.Add(ctx, deltas, msgs)
	c.mu.Lock()
	for t := range deltas {
		delete(c.m, t)
	}
	c.totalExp = time.Time{}
	c.mu.Unlock()
	return err
}

// Seen implements TokenStore.
func (c *Cache) Seen(ctx context.Context, id string) (Class, error) { return c.Inner.Seen(ctx, id) }

// SetSeen implements TokenStore.
func (c *Cache) SetSeen(ctx context.Context, id string, cl Class) error {
	return c.Inner.SetSeen(ctx, id, cl)
}
