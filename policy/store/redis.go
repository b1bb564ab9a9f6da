package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/redis/go-redis/v9"
)

// Redis is the shared store: several MTAs point at one Redis and see the
// same counters. Every compound update runs as one Lua script; Redis runs
// a script atomically, so concurrent daemons never interleave inside one.
type Redis struct {
	c      *redis.Client
	prefix string
}

// NewRedis connects lazily to the server named by url
// (redis://[:password@]host:port/db or unix:///path). prefix namespaces
// every key (e.g. "mailwarden:"). timeout bounds each operation.
func NewRedis(url, prefix string, timeout time.Duration) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, redisURLError(err)
	}
	if timeout > 0 {
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = timeout, timeout, timeout
	}
	// A failing Redis must surface quickly as on_error, not after retries.
	opt.MaxRetries = 1
	return &Redis{c: redis.NewClient(opt), prefix: prefix}, nil
}

// Ping checks that the server answers.
func (s *Redis) Ping(ctx context.Context) error {
	return s.wrap(s.c.Ping(ctx).Err())
}

func (s *Redis) k(key string) string { return s.prefix + key }

func (s *Redis) wrap(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return unavailable("redis", err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return fmt.Errorf("store: redis: %w", err) // the server answered with an error
	}
	return unavailable("redis", err)
}

func (s *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := s.c.Get(ctx, s.k(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.wrap(err)
	}
	return v, true, nil
}

func (s *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return s.wrap(s.c.Set(ctx, s.k(key), val, max(ttl, 0)).Err())
}

func (s *Redis) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	ok, err := s.c.SetNX(ctx, s.k(key), val, max(ttl, 0)).Result()
	if err != nil {
		return false, s.wrap(err)
	}
	return ok, nil
}

func (s *Redis) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = s.k(k)
	}
	return s.wrap(s.c.Del(ctx, ks...).Err())
}

func (s *Redis) MGet(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = s.k(k)
	}
	vs, err := s.c.MGet(ctx, ks...).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	for i, v := range vs {
		if str, ok := v.(string); ok {
			out[i] = []byte(str)
		}
	}
	return out, nil
}

// incrScript adds ARGV[2i-1] to KEYS[i] and, for a key that did not exist,
// sets the expiry ARGV[2i] (milliseconds, 0 = none).
var incrScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS do
  local existed = redis.call('EXISTS', KEYS[i])
  out[i] = redis.call('INCRBY', KEYS[i], ARGV[2*i-1])
  local ttl = tonumber(ARGV[2*i])
  if existed == 0 and ttl > 0 then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return out
`)

func (s *Redis) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	v, err := s.MIncr(ctx, []Inc{{key, delta, ttl}})
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (s *Redis) MIncr(ctx context.Context, incs []Inc) ([]int64, error) {
	if len(incs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(incs))
	args := make([]any, 0, 2*len(incs))
	for i, in := range incs {
		keys[i] = s.k(in.Key)
		args = append(args, in.Delta, ms(in.TTL))
	}
	res, err := incrScript.Run(ctx, s.c, keys, args...).Int64Slice()
	if err != nil {
		return nil, s.wrap(err)
	}
	return res, nil
}

// takeScript is the sliding-window log. Each key is a sorted set of
// admitted events scored by time in microseconds (exact in a double).
// ARGV: now, a unique id, then limit, period (µs), cost per key. Phase one
// prunes and checks every window; only if all have room does phase two
// record the events, so a refused request consumes nothing anywhere.
var takeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local id = ARGV[2]
for i = 1, #KEYS do
  local limit = tonumber(ARGV[3*i])
  local period = tonumber(ARGV[3*i+1])
  local cost = tonumber(ARGV[3*i+2])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - period)
  if redis.call('ZCARD', KEYS[i]) + cost > limit then
    return i - 1
  end
end
for i = 1, #KEYS do
  local period = tonumber(ARGV[3*i+1])
  local cost = tonumber(ARGV[3*i+2])
  for j = 1, cost do
    redis.call('ZADD', KEYS[i], now, id .. ':' .. j)
  end
  redis.call('PEXPIRE', KEYS[i], math.ceil(period / 1000) + 1000)
end
return -1
`)

func (s *Redis) Take(ctx context.Context, ws []Window, now time.Time) (int, error) {
	if len(ws) == 0 {
		return -1, nil
	}
	var idb [12]byte
	rand.Read(idb[:])
	keys := make([]string, len(ws))
	args := []any{now.UnixMicro(), strconv.FormatInt(now.UnixMicro(), 36) + "-" + hex.EncodeToString(idb[:])}
	for i, w := range ws {
		keys[i] = s.k(w.Key)
		args = append(args, w.Limit, w.Period.Microseconds(), w.cost())
	}
	n, err := takeScript.Run(ctx, s.c, keys, args...).Int()
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

func (s *Redis) Close() error { return s.c.Close() }

func ms(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Milliseconds(), 1)
}

// checkRedisURL parses a Redis URL without building a client.
func checkRedisURL(url string) error {
	if _, err := redis.ParseURL(url); err != nil {
		return redisURLError(err)
	}
	return nil
}

// redisURLError keeps the parser's reason but never the password the URL
// may carry (url.Parse quotes the whole URL in its errors).
func redisURLError(err error) error {
	return fmt.Errorf("store: redis url: %s", policy.Redact(err.Error()))
}

// peekScript counts the events in each window, (now-period, now], and
// returns the index of the first full one, or -1; it writes nothing.
var peekScript = redis.NewScript(`
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local limit = tonumber(ARGV[3*i-1])
  local period = tonumber(ARGV[3*i])
  local cost = tonumber(ARGV[3*i+1])
  if redis.call('ZCOUNT', KEYS[i], '(' .. (now - period), '+inf') + cost > limit then
    return i - 1
  end
end
return -1
`)

// SetBatch implements Batcher: one pipeline (one round trip) per batch.
func (s *Redis) SetBatch(ctx context.Context, es []Entry) error {
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range es {
			p.Set(ctx, s.k(e.Key), e.Val, max(e.TTL, 0))
		}
		return nil
	})
	return s.wrap(err)
}
