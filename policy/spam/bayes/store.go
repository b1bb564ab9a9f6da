package bayes

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/mailwarden/mailwarden/policy/store"
)

// Memory is an in-memory TokenStore, for evaluation and tests.
type Memory struct {
	mu     sync.RWMutex
	tokens map[string]Count
	total  Count
	seen   map[string]Class
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{tokens: map[string]Count{}, seen: map[string]Class{}}
}

// Counts implements TokenStore.
func (m *Memory) Counts(_ context.Context, tokens []string) ([]Count, Count, error) {
	out := make([]Count, len(tokens))
	m.mu.RLock()
	defer m.mu.RUnlock()
	for i, t := range tokens {
		out[i] = m.tokens[t]
	}
	return out, m.total, nil
}

// Add implements TokenStore. Counts that reach zero are dropped.
func (m *Memory) Add(_ context.Context, deltas map[string]Count, msgs Count) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for t, d := range deltas {
		c := m.tokens[t]
		c.Spam += d.Spam
		c.Ham += d.Ham
		if c.Spam <= 0 && c.Ham <= 0 {
			delete(m.tokens, t)
			continue
		}
		m.tokens[t] = c
	}
	m.total.Spam += msgs.Spam
	m.total.Ham += msgs.Ham
	return nil
}

// Seen implements TokenStore.
func (m *Memory) Seen(_ context.Context, id string) (Class, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.seen[id], nil
}

// SetSeen implements TokenStore.
func (m *Memory) SetSeen(_ context.Context, id string, c Class) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c == "" {
		delete(m.seen, id)
	} else {
		m.seen[id] = c
	}
	return nil
}

// Len is the number of distinct tokens.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.tokens)
}

// Store keeps the counts in the shared state store as decimal counters:
// Prefix+"s:"+token and Prefix+"h:"+token, the message totals under
// Prefix+"n:s" and Prefix+"n:h", learned message ids under
// Prefix+"id:"+id. One message is one MGet; learning is one atomic MIncr.
type Store struct {
	S      store.Store
	Prefix string // default "bayes:"
}

func (s *Store) prefix() string {
	if s.Prefix == "" {
		return "bayes:"
	}
	return s.Prefix
}

// Counts implements TokenStore.
func (s *Store) Counts(ctx context.Context, tokens []string) ([]Count, Count, error) {
	p := s.prefix()
	keys := make([]string, 0, 2*len(tokens)+2)
	keys = append(keys, p+"n:s", p+"n:h")
	for _, t := range tokens {
		keys = append(keys, p+"s:"+t, p+"h:"+t)
	}
	vals, err := s.S.MGet(ctx, keys)
	if err != nil {
		return nil, Count{}, fmt.Errorf("bayes: %w", err)
	}
	if len(vals) != len(keys) {
		return nil, Count{}, fmt.Errorf("bayes: store returned %d values for %d keys", len(vals), len(keys))
	}
	total := Count{Spam: counter(vals[0]), Ham: counter(vals[1])}
	out := make([]Count, len(tokens))
	for i := range tokens {
		out[i] = Count{Spam: counter(vals[2+2*i]), Ham: counter(vals[3+2*i])}
	}
	return out, total, nil
}

func counter(b []byte) int64 {
	if b == nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}

// Add implements TokenStore.
func (s *Store) Add(ctx context.Context, deltas map[string]Count, msgs Count) error {
	p := s.prefix()
	incs := make([]store.Inc, 0, 2*len(deltas)+2)
	for t, d := range deltas {
		if d.Spam != 0 {
			incs = append(incs, store.Inc{Key: p + "s:" + t, Delta: d.Spam})
		}
		if d.Ham != 0 {
			incs = append(incs, store.Inc{Key: p + "h:" + t, Delta: d.Ham})
		}
	}
	if msgs.Spam != 0 {
		incs = append(incs, store.Inc{Key: p + "n:s", Delta: msgs.Spam})
	}
	if msgs.Ham != 0 {
		incs = append(incs, store.Inc{Key: p + "n:h", Delta: msgs.Ham})
	}
	if len(incs) == 0 {
		return nil
	}
	vals, err := s.S.MIncr(ctx, incs)
	if err != nil {
		return fmt.Errorf("bayes: %w", err)
	}
	// Counters that fell to zero (forgotten tokens) are removed so that the
	// store does not keep dead keys.
	var dead []string
	for i, v := range vals {
		if v <= 0 && i < len(incs) {
			dead = append(dead, incs[i].Key)
		}
	}
	if len(dead) > 0 {
		if err := s.S.Delete(ctx, dead...); err != nil {
			return fmt.Errorf("bayes: %w", err)
		}
	}
	return nil
}

// Seen implements TokenStore.
func (s *Store) Seen(ctx context.Context, id string) (Class, error) {
	v, ok, err := s.S.Get(ctx, s.prefix()+"id:"+id)
	if err != nil {
		return "", fmt.Errorf("bayes: %w", err)
	}
	if !ok {
		return "", nil
	}
	return Class(v), nil
}

// SetSeen implements TokenStore.
func (s *Store) SetSeen(ctx context.Context, id string, c Class) error {
	var err error
	if c == "" {
		err = s.S.Delete(ctx, s.prefix()+"id:"+id)
	} else {
		err = s.S.Set(ctx, s.prefix()+"id:"+id, []byte(c), 0)
	}
	if err != nil {
		return fmt.Errorf("bayes: %w", err)
	}
	return nil
}
