package cache

import (
	"context"
	"fmt"
	"log/slog"
)

// RedisLogger turns go-redis's own log lines (one per failed dial, which a
// dead Redis produces at every probe) into debug records of l, so that the
// cache's one line per circuit transition is what an operator sees. Install
// it once per process with redis.SetLogger.
type RedisLogger struct{ L *slog.Logger }

// Printf implements go-redis's logging interface.
func (r RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	l := r.L
	if l == nil {
		l = slog.Default()
	}
	l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
