package quarantine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Index keeps the items, the audit log and the users' digest settings.
// Implementations are safe for concurrent use; their errors wrap
// ErrUnavailable, except ErrNotFound.
type Index interface {
	// Put adds or replaces an item.
	Put(ctx context.Context, it *Item) error
	// Get returns the item with id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Item, error)
	// Update applies fn to the item atomically and stores the result;
	// an error of fn aborts the update and is returned.
	Update(ctx context.Context, id string, fn func(*Item) error) (*Item, error)
	// Remove deletes the items' entries.
	Remove(ctx context.Context, ids ...string) error
	// Scan calls fn for every item, in no particular order, until fn
	// returns false.
	Scan(ctx context.Context, fn func(*Item) bool) error
	// AppendAudit records an entry of the audit log.
	AppendAudit(ctx context.Context, e AuditEntry) error
	// Audit returns the last n entries, newest first.
	Audit(ctx context.Context, n int) ([]AuditEntry, error)
	// Pref returns a user's settings (the zero Pref when unset).
	Pref(ctx context.Context, addr string) (Pref, error)
	// SetPref stores a user's settings.
	SetPref(ctx context.Context, addr string, p Pref) error
	// Senders returns the sender list of a recipient (normalised).
	Senders(ctx context.Context, rcpt string) ([]SenderEntry, error)
	// LookupSender returns what each recipient's list says of sender
	// (0: nothing), in the order of rcpts.
	LookupSender(ctx context.Context, sender string, rcpts []string) ([]ListKind, error)
	// SetSender adds or replaces an entry of rcpt's list.
	SetSender(ctx context.Context, rcpt string, e SenderEntry) error
	// RemoveSender removes sender from rcpt's list; false when absent.
	RemoveSender(ctx context.Context, rcpt, sender string) (bool, error)
	Close() error
}

// AuditEntry is one action on the quarantine.
type AuditEntry struct {
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"` // "admin", a user's address, "expiry", "cli"
	Role     Role      `json:"role,omitzero"`
	Action   Action    `json:"action"`
	ID       string    `json:"id"`
	Rcpt     string    `json:"rcpt,omitempty"`
	Category Category  `json:"category,omitzero"`
	Detail   string    `json:"detail,omitempty"`
}

// Frequency is how often a user gets the digest.
type Frequency uint8

const (
	FrequencyDaily  Frequency = iota // the default
	FrequencyWeekly                  // every 7 days
	FrequencyOff                     // no digest
)

var freqNames = [...]string{"daily", "weekly", "off"}

func (f Frequency) String() string {
	if int(f) < len(freqNames) {
		return freqNames[f]
	}
	return "frequency(?)"
}

// ParseFrequency reads daily, weekly or off.
func ParseFrequency(s string) (Frequency, error) {
	for i, n := range freqNames {
		if s == n {
			return Frequency(i), nil
		}
	}
	return 0, fmt.Errorf("quarantine: unknown digest frequency %q", s)
}

func (f Frequency) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

func (f *Frequency) UnmarshalText(b []byte) error {
	v, err := ParseFrequency(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Pref is a user's settings.
type Pref struct {
	Digest Frequency `json:"digest"`
	// LastDigest is when the last digest was sent; items quarantined
	// after it are new.
	LastDigest time.Time `json:"last_digest,omitzero"`
}

var (
	bucketItems = []byte("items")
	bucketAudit = []byte("audit")
	bucketPrefs = []byte("prefs")
	// bucketSenders: key recipient NUL sender, value a SenderEntry.
	bucketSenders = []byte("senders")
)

// BoltIndex is the embedded index: one bbolt file, locked by one process.
type BoltIndex struct {
	db *bolt.DB
}

// OpenBolt opens (creating) the index file at path, waiting at most
// timeout for another process's lock.
func OpenBolt(path string, timeout time.Duration) (*BoltIndex, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, &StoreError{"index", err}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, &StoreError{"index", fmt.Errorf("bolt %s: %w", path, err)}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketItems, bucketAudit, bucketPrefs, bucketSenders} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, &StoreError{"index", err}
	}
	return &BoltIndex{db: db}, nil
}

func boltErr(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		return err
	}
	var te *TransitionError
	if errors.As(err, &te) || errors.Is(err, ErrForbidden) {
		return err
	}
	return &StoreError{"index", err}
}

func (b *BoltIndex) Put(ctx context.Context, it *Item) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return boltErr(b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketItems).Put([]byte(it.ID), v)
	}))
}

func (b *BoltIndex) Get(ctx context.Context, id string) (*Item, error) {
	var it *Item
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketItems).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		it = new(Item)
		return json.Unmarshal(v, it)
	})
	return it, boltErr(err)
}

func (b *BoltIndex) Update(ctx context.Context, id string, fn func(*Item) error) (*Item, error) {
	var it *Item
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketItems)
		v := bk.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		it = new(Item)
		if err := json.Unmarshal(v, it); err != nil {
			return err
		}
		if err := fn(it); err != nil {
			return err
		}
		nv, err := json.Marshal(it)
		if err != nil {
			return err
		}
		return bk.Put([]byte(id), nv)
	})
	if err != nil {
		return nil, boltErr(err)
	}
	return it, nil
}

func (b *BoltIndex) Remove(ctx context.Context, ids ...string) error {
	return boltErr(b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketItems)
		for _, id := range ids {
			if err := bk.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	}))
}

func (b *BoltIndex) Scan(ctx context.Context, fn func(*Item) bool) error {
	return boltErr(b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketItems).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			it := new(Item)
			if err := json.Unmarshal(v, it); err != nil {
				return err
			}
			if !fn(it) {
				return nil
			}
		}
		return nil
	}))
}

func (b *BoltIndex) AppendAudit(ctx context.Context, e AuditEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return boltErr(b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketAudit)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		return bk.Put(binary.BigEndian.AppendUint64(nil, seq), v)
	}))
}

func (b *BoltIndex) Audit(ctx context.Context, n int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, boltErr(err)
}

func (b *BoltIndex) Pref(ctx context.Context, addr string) (Pref, error) {
	var p Pref
	err := b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketPrefs).Get([]byte(normAddr(addr))); v != nil {
			return json.Unmarshal(v, &p)
		}
		return nil
	})
	return p, boltErr(err)
}

func (b *BoltIndex) SetPref(ctx context.Context, addr string, p Pref) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return boltErr(b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPrefs).Put([]byte(normAddr(addr)), v)
	}))
}

func senderKey(rcpt, sender string) []byte { return []byte(rcpt + "\x00" + sender) }

func (b *BoltIndex) Senders(ctx context.Context, rcpt string) ([]SenderEntry, error) {
	var out []SenderEntry
	pre := senderKey(rcpt, "")
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSenders).Cursor()
		for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
			var e SenderEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, boltErr(err)
}

func (b *BoltIndex) LookupSender(ctx context.Context, sender string, rcpts []string) ([]ListKind, error) {
	out := make([]ListKind, len(rcpts))
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketSenders)
		for i, r := range rcpts {
			if v := bk.Get(senderKey(r, sender)); v != nil {
				var e SenderEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return err
				}
				out[i] = e.Kind
			}
		}
		return nil
	})
	if err != nil {
		return nil, boltErr(err)
	}
	return out, nil
}

func (b *BoltIndex) SetSender(ctx context.Context, rcpt string, e SenderEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return boltErr(b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSenders).Put(senderKey(rcpt, e.Sender), v)
	}))
}

func (b *BoltIndex) RemoveSender(ctx context.Context, rcpt, sender string) (bool, error) {
	found := false
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketSenders)
		k := senderKey(rcpt, sender)
		found = bk.Get(k) != nil
		return bk.Delete(k)
	})
	return found, boltErr(err)
}

func (b *BoltIndex) Close() error { return b.db.Close() }
