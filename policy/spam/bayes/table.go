package bayes

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"sync"

	"github.com/mailwarden/mailwarden/policy/store"
)

// Table keeps the whole token table of an embedded store (Bolt, Memory) in
// memory, so that once it is loaded a message's Counts touch no database:
// one hash and one map lookup per token. It is only correct where this
// process is the only writer, which bbolt's file lock guarantees; with
// Redis (other MTAs learn) use Cache instead.
//
// Each token is kept as a 64-bit hash (maphash, a random seed per Table)
// with two 32-bit counts in an open-addressing table (tokenTab): about
// 19 bytes per token (BenchmarkTableMemory), so the 590 000 tokens learned
// from the 6 046 SpamAssassin corpus messages (words and word pairs) take
// ~11 MB, and MaxTokens = 2 000 000 bounds it near 40 MB (a Go map took
// twice that). Two tokens whose hashes
// collide (probability ~n²/2⁶⁵, 10⁻⁸ for that corpus) share their counts.
//
// The table loads on the first Counts, in the background; until it is
// loaded, and for good when the store holds more than MaxTokens tokens or
// the load fails, Counts go to Fallback (the store, usually behind a
// Cache). What this process learns goes to Fallback and then into the
// table.
type Table struct {
	Fallback  TokenStore    // reads until loaded, and every write
	Scanner   store.Scanner // the store holding Fallback's keys
	Prefix    string        // Store.Prefix; default "bayes:"
	MaxTokens int
	Logger    *slog.Logger

	learn sync.Mutex // held by Add and by the load, so none is lost or counted twice

	mu     sync.RWMutex
	state  tableState
	seed   maphash.Seed
	counts tokenTab
	total  Count
}

type tableState uint8

const (
	tableCold tableState = iota
	tableLoading
	tableWarm
	tableOff // too big or failed: Fallback for good
)

type packed struct{ spam, ham uint32 }

// ErrTableTooBig is the load's error when the store holds more than
// MaxTokens tokens.
var ErrTableTooBig = errors.New("bayes: token table larger than max_memory_tokens")

// NewTable returns a Table over a store whose counts fallback reads.
func NewTable(fallback TokenStore, sc store.Scanner, prefix string, maxTokens int, log *slog.Logger) *Table {
	if prefix == "" {
		prefix = "bayes:"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{Fallback: fallback, Scanner: sc, Prefix: prefix, MaxTokens: maxTokens, Logger: log, seed: maphash.MakeSeed()}
}

// Warm reports whether Counts is answered from memory.
func (t *Table) Warm() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.state == tableWarm
}

// Len is the number of tokens in memory (0 until loaded).
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.counts.len()
}

// Counts implements TokenStore.
func (t *Table) Counts(ctx context.Context, tokens []string) ([]Count, Count, error) {
	t.mu.RLock()
	if t.state == tableWarm {
		out := make([]Count, len(tokens))
		for i, tok := range tokens {
			p := t.counts.get(maphash.String(t.seed, tok))
			out[i] = Count{Spam: int64(p.spam), Ham: int64(p.ham)}
		}
		total := t.total
		t.mu.RUnlock()
		return out, total, nil
	}
	cold := t.state == tableCold
	t.mu.RUnlock()
	if cold {
		t.mu.Lock()
		if t.state == tableCold {
			t.state = tableLoading
			go func() {
				if err := t.load(context.Background()); err != nil {
					t.Logger.Warn("bayes: token table stays in the store", "error", err.Error())
				}
			}()
		}
		t.mu.Unlock()
	}
	return t.Fallback.Counts(ctx, tokens)
}

// Load reads the whole table now (the background load of the first Counts
// does the same); after an error the Table stays on Fallback.
func (t *Table) Load(ctx context.Context) error {
	t.mu.Lock()
	if t.state == tableWarm {
		t.mu.Unlock()
		return nil
	}
	t.state = tableLoading
	t.mu.Unlock()
	return t.load(ctx)
}

func (t *Table) load(ctx context.Context) (err error) {
	t.learn.Lock()
	defer t.learn.Unlock()
	var m tokenTab
	var total Count
	defer func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if err != nil {
			t.state = tableOff
			return
		}
		m.fit()
		t.counts, t.total, t.state = m, total, tableWarm
		// The reads of the load went through Fallback, usually a Cache
		// that would otherwise keep them (MBs) for nothing.
		if r, ok := t.Fallback.(interface{ Reset() }); ok {
			r.Reset()
		}
	}()
	err = t.Scanner.Scan(ctx, t.Prefix, func(key, val []byte) error {
		rest := key[len(t.Prefix):]
		n := counter(val)
		switch {
		case string(rest) == "n:s":
			total.Spam = n
		case string(rest) == "n:h":
			total.Ham = n
		case len(rest) >= 2 && (rest[0] == 's' || rest[0] == 'h') && rest[1] == ':':
			// maphash.Bytes and maphash.String agree on the same bytes.
			h := maphash.Bytes(t.seed, rest[2:])
			p := m.get(h)
			if p == (packed{}) && t.MaxTokens > 0 && m.len() >= t.MaxTokens {
				return fmt.Errorf("%w (%d)", ErrTableTooBig, t.MaxTokens)
			}
			if rest[0] == 's' {
				p.spam = clamp32(n)
			} else {
				p.ham = clamp32(n)
			}
			m.set(h, p)
		}
		return nil
	})
	return err
}

func clamp32(n int64) uint32 { return uint32(min(max(n, 0), math.MaxUint32)) }

// Add implements TokenStore: the store first, then the table.
func (t *Table) Add(ctx context.Context, deltas map[string]Count, msgs Count) error {
	t.learn.Lock()
	defer t.learn.Unlock()
	if err := t.Fallback.Add(ctx, deltas, msgs); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != tableWarm {
		return nil
	}
	for tok, d := range deltas {
		h := maphash.String(t.seed, tok)
		p := t.counts.get(h)
		p.spam = clamp32(int64(p.spam) + d.Spam)
		p.ham = clamp32(int64(p.ham) + d.Ham)
		t.counts.set(h, p)
	}
	t.total.Spam += msgs.Spam
	t.total.Ham += msgs.Ham
	return nil
}

// Seen implements TokenStore.
func (t *Table) Seen(ctx context.Context, id string) (Class, error) { return t.Fallback.Seen(ctx, id) }

// SetSeen implements TokenStore.
func (t *Table) SetSeen(ctx context.Context, id string, c Class) error {
	return t.Fallback.SetSeen(ctx, id, c)
}
