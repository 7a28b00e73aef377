package main

import (
	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/server"
)

// jobStore is where serve keeps async jobs: in the Redis that --redis names
// (its own client, so that any replica can answer GET /v1/jobs/{id}), else
// in this process. close releases the client.
func jobStore(c *cacheFlags) (store server.JobStore, close func(), err error) {
	if c.redisURL == "" {
		return nil, func() {}, nil // the server's in-memory default
	}
	rdb, err := cache.NewRedis(c.redisURL, c.redisTimeout)
	if err != nil {
		return nil, nil, usagef("--redis: %v", err)
	}
	return server.NewRedisJobs(rdb), func() { rdb.Close() }, nil
}
