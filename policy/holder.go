package policy

import (
	"io"
	"sync"
)

// Holder keeps the current pipeline and swaps it atomically on reload. A
// message acquires the pipeline once and keeps it to the end, so that one
// transaction never sees two configs; a replaced pipeline is closed when
// its last message releases it.
type Holder struct {
	mu   sync.Mutex
	cur  *Pipeline
	refs map[*Pipeline]int
}

// NewHolder starts with p.
func NewHolder(p *Pipeline) *Holder {
	return &Holder{cur: p, refs: map[*Pipeline]int{}}
}

// Current returns the pipeline in force (for read-only inspection).
func (h *Holder) Current() *Pipeline {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// Acquire returns the pipeline in force and a release function that must be
// called exactly once when the caller is done with it.
func (h *Holder) Acquire() (*Pipeline, func()) {
	h.mu.Lock()
	p := h.cur
	h.refs[p]++
	h.mu.Unlock()
	var once sync.Once
	return p, func() { once.Do(func() { h.release(p) }) }
}

func (h *Holder) release(p *Pipeline) {
	h.mu.Lock()
	h.refs[p]--
	closeIt := h.refs[p] == 0 && p != h.cur
	if h.refs[p] == 0 {
		delete(h.refs, p)
	}
	h.mu.Unlock()
	if closeIt {
		p.Close()
	}
}

// Swap puts p in force. The old pipeline is closed now if no message uses
// it, or when the last one releases it; retired are closed with it (the
// services a reload replaced, which in-flight messages may still use).
func (h *Holder) Swap(p *Pipeline, retired ...io.Closer) {
	h.mu.Lock()
	old := h.cur
	if old != nil && old != p {
		old.retire(retired)
	}
	h.cur = p
	closeIt := old != nil && old != p && h.refs[old] == 0
	h.mu.Unlock()
	if closeIt {
		old.Close()
	}
}

// Close closes the pipeline in force (at shutdown).
func (h *Holder) Close() error {
	h.mu.Lock()
	p := h.cur
	h.mu.Unlock()
	if p != nil {
		return p.Close()
	}
	return nil
}
