package cache

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	redis.SetLogger(RedisLogger{L: quiet()})
	os.Exit(m.Run())
}
