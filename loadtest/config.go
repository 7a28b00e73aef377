package loadtest

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/icthp/icthp/preprocess"
)

// Routes the load generator can drive (SPEC §4).
const (
	RouteScore  = "score"  // POST /v1/score  {"prompt", "images": [B64...]}
	RouteRank   = "rank"   // POST /v1/rank   {"prompt", "images": [B64...]}
	RouteReward = "reward" // POST /v1/reward {"items": [{"prompt", "image"}...]}
)

// Defaults applied by Run to zero fields of Config.
const (
	DefaultDuration    = 10 * time.Second
	DefaultTimeout     = 30 * time.Second
	DefaultMaxInflight = 256
)

// DefaultPrompts are sent when Config.Prompts is empty.
var DefaultPrompts = []string{
	"a red apple on a wooden table",
	"a lighthouse on a cliff at sunset, oil painting",
	"a cat wearing a tiny astronaut helmet, studio photo",
	"a futuristic city skyline at night in the rain",
}

// Config says what to send, where, and for how long. Exactly one of
// Concurrency (closed loop) and Rate (open loop) is set; if neither is,
// Run uses a closed loop with one client.
type Config struct {
	// URL is the server's base URL, http or https with a host, and an
	// optional path prefix: requests go to URL + "/v1/" + Route and
	// nowhere else (redirects are not followed, proxies not used).
	URL string
	// Route is RouteScore (default), RouteRank or RouteReward.
	Route string

	// Concurrency is the number of closed-loop clients: each sends its
	// next request when the previous one has been answered.
	Concurrency int
	// Rate is the open-loop arrival rate in requests per second; arrivals
	// are a Poisson process (exponential inter-arrival times).
	Rate float64
	// MaxInflight caps the requests in flight in the open loop (default
	// DefaultMaxInflight); an arrival that finds the cap reached is not
	// sent and is counted in Report.Dropped.
	MaxInflight int

	// Duration bounds the time during which requests are started; Requests
	// bounds their number (in the open loop: arrivals, sent or dropped).
	// When both are zero Duration is DefaultDuration. Requests in flight at
	// the end are waited for (at most Timeout) and counted.
	Duration time.Duration
	Requests int

	// Images are the image files to send (see LoadImages), each encoded
	// to base64 once. ImagesPerRequest is how many go in one request:
	// default 1 for score and reward, 4 for rank; images are used in turn
	// and reused cyclically.
	Images           []Image
	ImagesPerRequest int
	// Raw sends each request's images as decoded pixels in one
	// application/x-icthp-tensor body (SPEC: raw pixels), as RL loops do:
	// Run decodes every file once (preprocess.DecodeRGB, the server's
	// decoder and default limits), and the files must all have one size
	// (a body has one shape). The server then skips decoding.
	Raw bool
	// Multipart sends each request as multipart/form-data (the files'
	// bytes as parts named images, the prompt as a form field), as browsers
	// and curl -F do: no base64, the cheapest way for a server to take
	// large encoded images. Not with Raw.
	Multipart bool
	// Prompts are used in turn; DefaultPrompts when empty.
	Prompts []string

	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Timeout bounds each request, response body included (default
	// DefaultTimeout).
	Timeout time.Duration

	// Seed seeds the open loop's arrival times (0: seeded from the clock).
	Seed uint64
	// ProgressInterval overrides the progress period (default 1 s on a
	// terminal, 5 s otherwise).
	ProgressInterval time.Duration

	// arrivalsDone, when set (by tests), is called when the open loop has
	// made its last arrival and before it waits for the requests in flight.
	arrivalsDone func()
}

// Image is one image file's bytes.
type Image struct {
	Name string
	Data []byte
}

// LoadImages reads every image file (preprocess.ImageExtensions, any case)
// directly in dir, in name order. It is an error if dir cannot be read or holds none.
func LoadImages(dir string) ([]Image, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if preprocess.IsImageExt(filepath.Ext(e.Name())) && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var imgs []Image
	for _, n := range names {
		p := filepath.Join(dir, n)
		st, err := os.Stat(p) // follows symbolic links
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, Image{Name: n, Data: b})
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no %s files in %s", strings.Join(preprocess.ImageExtensions(), ", "), dir)
	}
	return imgs, nil
}

// LoadPrompts reads one prompt per line, trimmed, skipping blank lines. It is
// an error if the file holds none.
func LoadPrompts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ps []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			ps = append(ps, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("%s: no prompts", path)
	}
	return ps, nil
}

// ValidateURL checks that s is an absolute http or https URL with a host and
// no query, fragment or credentials, and returns it parsed.
func ValidateURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("no URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URL %q: scheme must be http or https", s)
	}
	if u.Hostname() == "" || u.Opaque != "" {
		return nil, fmt.Errorf("URL %q has no host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("URL %q: only scheme, host, port and path prefix are allowed", s)
	}
	return u, nil
}

// Validate reports the first thing wrong with the configuration, after
// the defaults are applied. Run calls it.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults returns the configuration with its defaults filled in, or the
// first thing wrong with it.
func (c Config) withDefaults() (Config, error) {
	if _, err := ValidateURL(c.URL); err != nil {
		return c, err
	}
	switch c.Route {
	case "":
		c.Route = RouteScore
	case RouteScore, RouteRank, RouteReward:
	default:
		return c, fmt.Errorf("route %q: want score, rank or reward", c.Route)
	}
	switch {
	case c.Concurrency < 0:
		return c, errors.New("concurrency must be positive")
	case c.Rate < 0 || c.Rate != c.Rate || c.Rate > 1e9:
		return c, errors.New("rate must be a positive number of requests per second")
	case c.Concurrency > 0 && c.Rate > 0:
		return c, errors.New("set either a concurrency (closed loop) or a rate (open loop), not both")
	case c.Concurrency == 0 && c.Rate == 0:
		c.Concurrency = 1
	}
	if c.MaxInflight < 0 {
		return c, errors.New("max-inflight must be positive")
	}
	if c.Rate > 0 && c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.Rate == 0 {
		c.MaxInflight = 0
	}
	if c.Duration < 0 || c.Requests < 0 {
		return c, errors.New("duration and requests must not be negative")
	}
	if c.Duration == 0 && c.Requests == 0 {
		c.Duration = DefaultDuration
	}
	if len(c.Images) == 0 {
		return c, errors.New("no images")
	}
	if c.Raw && c.Multipart {
		return c, errors.New("set either raw (decoded pixels) or multipart (files as form parts), not both")
	}
	if c.ImagesPerRequest < 0 {
		return c, errors.New("images-per-request must be positive")
	}
	if c.ImagesPerRequest == 0 {
		c.ImagesPerRequest = 1
		if c.Route == RouteRank {
			c.ImagesPerRequest = 4
		}
	}
	if len(c.Prompts) == 0 {
		c.Prompts = DefaultPrompts
	}
	if c.Timeout < 0 {
		return c, errors.New("timeout must be positive")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if strings.ContainsAny(c.Token, "\r\n") {
		return c, errors.New("token must be one line")
	}
	return c, nil
}
