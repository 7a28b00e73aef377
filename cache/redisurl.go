package cache

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrBadURL marks a Redis URL that cannot be used.
var ErrBadURL = errors.New("cache: bad redis URL")

// DefaultRedisTimeout bounds one Redis round trip (and a connection's dial):
// past it the request goes on without Redis.
const DefaultRedisTimeout = 100 * time.Millisecond

// ParseRedisURL reads a Redis location into go-redis's universal options:
//
//	redis://[user:password@]host[:port][/db]          standalone
//	rediss://...                                      the same over TLS
//	redis://host:port?addr=host2:port&addr=host3:port  Cluster (seed nodes)
//	redis://host:port?cluster=true                    Cluster from one seed
//	redis://[:password@]sentinel:26379?master_name=mymaster[&addr=sentinel2:26379][&sentinel_password=P]
//	                                                  Sentinel-managed primary
//
// The password in the user-info part is the data nodes' password. timeout
// bounds dialling, reading and writing; there are no retries, because the
// cache gives up on Redis quickly instead.
func ParseRedisURL(s string, timeout time.Duration) (*redis.UniversalOptions, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if timeout <= 0 {
		timeout = DefaultRedisTimeout
	}
	o := &redis.UniversalOptions{
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		o.TLSConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	default:
		return nil, fmt.Errorf("%w: scheme %q (want redis:// or rediss://)", ErrBadURL, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: no host in %q", ErrBadURL, redactURL(u))
	}
	o.Addrs = []string{hostPort(u.Host)}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if o.DB, err = strconv.Atoi(p); err != nil || o.DB < 0 {
			return nil, fmt.Errorf("%w: database %q is not a number", ErrBadURL, p)
		}
	}
	for name, vals := range u.Query() {
		last := vals[len(vals)-1]
		switch name {
		case "addr":
			for _, a := range vals {
				if a == "" {
					return nil, fmt.Errorf("%w: empty addr", ErrBadURL)
				}
				o.Addrs = append(o.Addrs, hostPort(a))
			}
		case "master_name":
			o.MasterName = last
		case "sentinel_username":
			o.SentinelUsername = last
		case "sentinel_password":
			o.SentinelPassword = last
		case "cluster":
			if o.IsClusterMode, err = strconv.ParseBool(last); err != nil {
				return nil, fmt.Errorf("%w: cluster=%q", ErrBadURL, last)
			}
		default:
			return nil, fmt.Errorf("%w: unknown parameter %q", ErrBadURL, name)
		}
	}
	if o.MasterName != "" && o.IsClusterMode {
		return nil, fmt.Errorf("%w: master_name and cluster=true do not go together", ErrBadURL)
	}
	if o.DB != 0 && (o.IsClusterMode || (len(o.Addrs) > 1 && o.MasterName == "")) {
		return nil, fmt.Errorf("%w: a Redis Cluster has only database 0", ErrBadURL)
	}
	return o, nil
}

// NewRedis connects lazily to the Redis that s names (see ParseRedisURL).
func NewRedis(s string, timeout time.Duration) (redis.UniversalClient, error) {
	o, err := ParseRedisURL(s, timeout)
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(o), nil
}

func hostPort(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	return net.JoinHostPort(strings.Trim(h, "[]"), "6379")
}

func redactURL(u *url.URL) string {
	return u.Redacted()
}
