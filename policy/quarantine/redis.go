package quarantine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisIndex is the shared index for several MTAs that keep their
// messages in one shared directory (NFS or a cluster file system): one
// key per item (JSON), a set of the ids, a list for the audit log and a
// hash of the users' settings. Update is optimistic (WATCH/MULTI/EXEC,
// retried on a conflict), so two daemons never overwrite each other's
// state change. policy/store's key-value interface cannot list keys,
// which the page and the expiry job need, so this is its own type.
type RedisIndex struct {
	c      *redis.Client
	prefix string
	// AuditMax is how many audit entries are kept; default 100000.
	AuditMax int64
}

// NewRedisIndex connects lazily to url (redis://[:password@]host:port/db
// or unix:///path); prefix namespaces the keys ("mailwarden:q:").
func NewRedisIndex(url, prefix string, timeout time.Duration) (*RedisIndex, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("quarantine: redis url: %w", err)
	}
	if timeout > 0 {
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = timeout, timeout, timeout
	}
	opt.MaxRetries = 1
	return &RedisIndex{c: redis.NewClient(opt), prefix: prefix, AuditMax: 100000}, nil
}

func (r *RedisIndex) item(id string) string { return r.prefix + "item:" + id }

func redisErr(err error) error {
	if err == nil {
		return nil
	}
	return &StoreError{"index", fmt.Errorf("redis: %w", err)}
}

func (r *RedisIndex) Put(ctx context.Context, it *Item) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.item(it.ID), v, 0)
		p.SAdd(ctx, r.prefix+"ids", it.ID)
		return nil
	})
	return redisErr(err)
}

func (r *RedisIndex) Get(ctx context.Context, id string) (*Item, error) {
	v, err := r.c.Get(ctx, r.item(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, redisErr(err)
	}
	it := new(Item)
	if err := json.Unmarshal(v, it); err != nil {
		return nil, redisErr(err)
	}
	return it, nil
}

func (r *RedisIndex) Update(ctx context.Context, id string, fn func(*Item) error) (*Item, error) {
	key := r.item(id)
	var out *Item
	var fnErr error
	txf := func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			fnErr = ErrNotFound
			return nil
		}
		if err != nil {
			return err
		}
		it := new(Item)
		if err := json.Unmarshal(v, it); err != nil {
			return err
		}
		if err := fn(it); err != nil {
			fnErr = err
			return nil
		}
		nv, err := json.Marshal(it)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, nv, 0)
			return nil
		})
		out = it
		return err
	}
	for range 20 {
		fnErr, out = nil, nil
		err := r.c.Watch(ctx, txf, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue // another daemon changed the item: read it again
		}
		if err != nil {
			return nil, redisErr(err)
		}
		if fnErr != nil {
			return nil, fnErr
		}
		return out, nil
	}
	return nil, redisErr(errors.New("too many concurrent updates"))
}

func (r *RedisIndex) Remove(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]string, len(ids))
	members := make([]any, len(ids))
	for i, id := range ids {
		keys[i], members[i] = r.item(id), id
	}
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, keys...)
		p.SRem(ctx, r.prefix+"ids", members...)
		return nil
	})
	return redisErr(err)
}

func (r *RedisIndex) Scan(ctx context.Context, fn func(*Item) bool) error {
	ids, err := r.c.SMembers(ctx, r.prefix+"ids").Result()
	if err != nil {
		return redisErr(err)
	}
	const batch = 500
	for len(ids) > 0 {
		n := min(batch, len(ids))
		keys := make([]string, n)
		for i, id := range ids[:n] {
			keys[i] = r.item(id)
		}
		ids = ids[n:]
		vals, err := r.c.MGet(ctx, keys...).Result()
		if err != nil {
			return redisErr(err)
		}
		for _, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // removed meanwhile
			}
			it := new(Item)
			if err := json.Unmarshal([]byte(s), it); err != nil {
				return redisErr(err)
			}
			if !fn(it) {
				return nil
			}
		}
	}
	return nil
}

func (r *RedisIndex) AppendAudit(ctx context.Context, e AuditEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, r.prefix+"audit", v)
		p.LTrim(ctx, r.prefix+"audit", 0, r.AuditMax-1)
		return nil
	})
	return redisErr(err)
}

func (r *RedisIndex) Audit(ctx context.Context, n int) ([]AuditEntry, error) {
	vals, err := r.c.LRange(ctx, r.prefix+"audit", 0, int64(n)-1).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	out := make([]AuditEntry, 0, len(vals))
	for _, v := range vals {
		var e AuditEntry
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			return nil, redisErr(err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (r *RedisIndex) Pref(ctx context.Context, addr string) (Pref, error) {
	var p Pref
	v, err := r.c.HGet(ctx, r.prefix+"prefs", normAddr(addr)).Bytes()
	if errors.Is(err, redis.Nil) {
		return p, nil
	}
	if err != nil {
		return p, redisErr(err)
	}
	return p, redisErr(json.Unmarshal(v, &p))
}

func (r *RedisIndex) SetPref(ctx context.Context, addr string, p Pref) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return redisErr(r.c.HSet(ctx, r.prefix+"prefs", normAddr(addr), v).Err())
}

func (r *RedisIndex) senders(rcpt string) string { return r.prefix + "senders:" + rcpt }

func (r *RedisIndex) Senders(ctx context.Context, rcpt string) ([]SenderEntry, error) {
	m, err := r.c.HGetAll(ctx, r.senders(rcpt)).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	out := make([]SenderEntry, 0, len(m))
	for _, v := range m {
		var e SenderEntry
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			return nil, redisErr(err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (r *RedisIndex) LookupSender(ctx context.Context, sender string, rcpts []string) ([]ListKind, error) {
	cmds := make([]*redis.StringCmd, len(rcpts))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, rc := range rcpts {
			cmds[i] = p.HGet(ctx, r.senders(rc), sender)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr(err)
	}
	out := make([]ListKind, len(rcpts))
	for i, c := range cmds {
		v, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, redisErr(err)
		}
		var e SenderEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, redisErr(err)
		}
		out[i] = e.Kind
	}
	return out, nil
}

func (r *RedisIndex) SetSender(ctx context.Context, rcpt string, e SenderEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return redisErr(r.c.HSet(ctx, r.senders(rcpt), e.Sender, v).Err())
}

func (r *RedisIndex) RemoveSender(ctx context.Context, rcpt, sender string) (bool, error) {
	n, err := r.c.HDel(ctx, r.senders(rcpt), sender).Result()
	return n > 0, redisErr(err)
}

func (r *RedisIndex) Close() error { return r.c.Close() }
