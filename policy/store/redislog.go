package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SetRedisLogger routes go-redis's own log lines (a failed dial while the
// server is down, pool and re-authentication trouble) to l at warning
// level, with the attribute library="go-redis". Without it go-redis
// prints plain text on stderr, which breaks a JSON log. The setting is
// process-wide, like go-redis's logger.
func SetRedisLogger(l *slog.Logger) {
	redis.SetLogger(redisLog{l})
}

// redisLog adapts slog to go-redis's Logging interface.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, "library warning", "library", "go-redis",
		"detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
}
