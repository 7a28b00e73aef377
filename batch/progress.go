package batch

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress draws one status line (done/total, a bar, images/s, ETA, errors)
// over itself with carriage returns, about four times a second.
type progress struct {
	w     io.Writer
	now   func() time.Time
	start time.Time

	mu             sync.Mutex
	total, skipped int
	done, errors   int // done counts this run's rows only
	last           string
	stopped        bool
	quit           chan struct{}
	wg             sync.WaitGroup
	refresh        time.Duration
}

// newProgress starts drawing every refresh.
func newProgress(w io.Writer, now func() time.Time, refresh time.Duration, total, skipped, errors int) *progress {
	p := &progress{w: w, now: now, start: now(), total: total, skipped: skipped, errors: errors,
		quit: make(chan struct{}), refresh: refresh}
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(p.refresh)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.draw()
		case <-p.quit:
			return
		}
	}
}

func (p *progress) add(n, errs int) {
	p.mu.Lock()
	p.done += n
	p.errors += errs
	p.mu.Unlock()
}

// line is the current status line.
func (p *progress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return progressLine(p.skipped+p.done, p.total, p.done, p.errors, p.now().Sub(p.start))
}

// progressLine formats the status: "  1200/5000 [#####.....] 24%  48.1 img/s
// ETA 1m19s  errors 3". The rate and ETA count only this run's images.
func progressLine(done, total, thisRun, errs int, elapsed time.Duration) string {
	const width = 20
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(thisRun) / elapsed.Seconds()
	}
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%*d/%d [%s] %3.0f%%  %.1f img/s  ETA %s  errors %d", len(fmt.Sprint(total)), done, total, bar, 100*frac, rate, eta, errs)
}

func (p *progress) draw() {
	l := p.line()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || l == p.last {
		return
	}
	pad := ""
	if len(l) < len(p.last) {
		pad = strings.Repeat(" ", len(p.last)-len(l))
	}
	fmt.Fprintf(p.w, "\r%s%s", l, pad)
	p.last = l
}

// stop draws the final state and ends the line.
func (p *progress) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	close(p.quit)
	p.wg.Wait()
	p.draw()
	p.mu.Lock()
	p.stopped = true
	if p.last != "" {
		fmt.Fprintln(p.w)
	}
	p.mu.Unlock()
}
