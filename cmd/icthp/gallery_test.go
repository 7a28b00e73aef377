package main

// The gallery page (GET /, server/gallery) in a real headless Chromium
// against the real `icthp serve` in process (demo ICT and HP models plus a
// tiny random ImageReward, real onnxruntime sessions, loopback HTTP): the
// demo images and a broken file are picked and ranked through the page, and
// the cards must show exactly what POST /v1/rank answers for the same files.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/modelset"
)

// chromium finds the browser: $ICTHP_CHROMIUM, else Debian's chromium
// (scripts/setup-system.sh installs it, so `make test` runs this test).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ICTHP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is required for the gallery test: run `make system` (scripts/setup-system.sh installs Debian's chromium) or set $ICTHP_CHROMIUM")
	return ""
}

// consoleLog keeps what the page writes to its console.
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func (c *consoleLog) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
			out = append(out, fmt.Sprintf("%s %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
		}
	}
	return out
}

// browser starts headless Chromium with one tab, stopped when the test
// ends. The flags keep it off the network (the machine has none) and work
// as root (no sandbox).
func browser(t *testing.T) (context.Context, *consoleLog) {
	t.Helper()
	profile := t.TempDir() // removed after the browser has stopped (cleanups run last-in first-out)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	}
	for _, f := range []string{"disable-quic", "disable-background-networking", "disable-component-update",
		"disable-sync", "disable-dev-shm-usage", "disable-extensions", "disable-default-apps", "disable-breakpad"} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	opts = append(opts, chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	log := &consoleLog{}
	msgs := chromedp.Console(ctx) // starts the browser; subscribes before the first page
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			log.mu.Lock()
			log.msgs = append(log.msgs, m)
			log.mu.Unlock()
		}
	}()
	return ctx, log
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(time.Minute))); err != nil {
		status := eval[string](t, ctx, `document.getElementById('status').textContent + ' | ' + document.getElementById('models-status').textContent`)
		t.Fatalf("waiting for %s (%s): %v; the page says %q", what, js, err, status)
	}
}

// rankAnswer is POST /v1/rank's answer: per item its index, its error, and
// every numeric field (the scores) as the JSON decoder reads them.
type rankItem struct {
	index  int
	errMsg string
	scores map[string]float64
}

func rankRef(t *testing.T, url, token, prompt string, files []string) []rankItem {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("prompt", prompt)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := mw.CreateFormFile("images", filepath.Base(f))
		w.Write(b)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/rank", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var ans struct{ Ranking []map[string]any }
	if err := json.Unmarshal(raw, &ans); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/rank: %d %s (%v)", res.StatusCode, raw, err)
	}
	out := make([]rankItem, len(ans.Ranking))
	for k, it := range ans.Ranking {
		out[k] = rankItem{index: int(it["index"].(float64)), scores: map[string]float64{}}
		for name, v := range it {
			switch v := v.(type) {
			case float64:
				if name != "index" {
					out[k].scores[name] = v
				}
			case map[string]any:
				out[k].errMsg, _ = v["message"].(string)
			}
		}
	}
	return out
}

// card is what the page shows for one image.
type card struct {
	Index  int    `json:"index"`
	Badge  string `json:"badge"`
	Error  string `json:"error"`
	Scores []struct {
		Name  string  `json:"name"`
		Value string  `json:"value"` // data-value: the exact number
		Shown string  `json:"shown"` // the rounded text
		Exact string  `json:"exact"` // the text shown on hover or focus
		Width float64 `json:"width"` // the bar, in percent
	} `json:"scores"`
}

const readCards = `Array.from(document.querySelectorAll('#cards > li')).map(li => ({
	index: Number(li.dataset.index),
	badge: li.querySelector('.badge').textContent,
	error: (li.querySelector('.card-error') || {textContent: ''}).textContent,
	scores: Array.from(li.querySelectorAll('.score')).map(s => ({
		name: s.dataset.score, value: s.dataset.value,
		shown: s.querySelector('.num').textContent, exact: s.querySelector('.exact').textContent,
		width: parseFloat(s.querySelector('.fill').style.width)})),
}))`

// checkCards compares the cards with /v1/rank's answer: the same order,
// the same errors, the same score names, and every number exactly the
// same (tol 0) or within tol relative (scores the page computed itself).
func checkCards(t *testing.T, cards []card, want []rankItem, tol float64, skip ...string) {
	t.Helper()
	if len(cards) != len(want) {
		t.Fatalf("%d cards, /v1/rank answered %d items", len(cards), len(want))
	}
	for k, w := range want {
		c := cards[k]
		if c.Index != w.index {
			t.Errorf("card %d shows image %d, /v1/rank has image %d there", k, c.Index, w.index)
		}
		if w.errMsg != "" {
			if !strings.Contains(c.Error, w.errMsg) || len(c.Scores) != 0 || c.Badge != "–" {
				t.Errorf("card %d: error %q with %d scores, want the error %q alone", k, c.Error, len(c.Scores), w.errMsg)
			}
			continue
		}
		if c.Error != "" || c.Badge != strconv.Itoa(k+1) {
			t.Errorf("card %d: badge %q, error %q", k, c.Badge, c.Error)
		}
		seen := map[string]bool{}
		for _, s := range c.Scores {
			seen[s.Name] = true
			ref, ok := w.scores[s.Name]
			got, err := strconv.ParseFloat(s.Value, 64)
			switch {
			case !ok:
				t.Errorf("card %d shows %s, which /v1/rank does not have", k, s.Name)
			case err != nil || math.Abs(got-ref) > tol*math.Abs(ref):
				t.Errorf("card %d %s: page %q, /v1/rank %v", k, s.Name, s.Value, ref)
			case s.Exact != s.Value:
				t.Errorf("card %d %s: exact text %q, value %q", k, s.Name, s.Exact, s.Value)
			}
			if shown, err := strconv.ParseFloat(s.Shown, 64); err != nil || math.Abs(shown-got) > 5e-4*math.Max(1, math.Abs(got)) {
				t.Errorf("card %d %s: shows %q for %v", k, s.Name, s.Shown, got)
			}
			if s.Width < 2 || s.Width > 100 {
				t.Errorf("card %d %s: bar width %v%%", k, s.Name, s.Width)
			}
		}
		for name := range w.scores {
			if !seen[name] && !contains(skip, name) {
				t.Errorf("card %d lacks %s", k, name)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func noConsoleErrors(t *testing.T, log *consoleLog) {
	t.Helper()
	if errs := log.errors(); len(errs) > 0 {
		t.Errorf("the page wrote to the console:\n%s", strings.Join(errs, "\n"))
	}
}

// screenshot saves a full-page PNG in the test's artifact folder (kept with
// `go test -artifacts -outputdir DIR`), and in $ICTHP_SCREENSHOT_DIR when set
// (how docs/gallery*.png are refreshed).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot %s: %d bytes, %v", name, len(png), err)
	}
	dirs := []string{t.ArtifactDir()}
	if d := os.Getenv("ICTHP_SCREENSHOT_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// galleryServe starts `icthp serve` with the demo ICT and HP models and a
// tiny random ImageReward, at most 5 images a request, and returns its URL
// and the files to rank: the demo images with a broken file among them.
func galleryServe(t *testing.T) (string, []string) {
	t.Helper()
	t.Setenv(ortlib.EnvCache, t.TempDir())
	root, err := ortlib.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := modelset.Demo(filepath.Join(root, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	ictDir, hpDir := dirs["ict"], dirs["hp"]
	irDir := filepath.Join(t.TempDir(), "ir")
	mustRun(t, "convert", "random", "--kind", "imagereward", "--preset", "tiny", "--seed", "5", "--out", irDir)
	url := serveInProcess(t, "--drain-delay", "0s", "--ict", ictDir, "--hp", hpDir, "--imagereward", irDir, "--max-images", "5")

	demo := filepath.Join("..", "..", "testdata", "demo")
	broken := filepath.Join(t.TempDir(), "broken.png")
	if err := os.WriteFile(broken, []byte("this is not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(demo, "apple.jpg"), broken, filepath.Join(demo, "checkers.webp"), filepath.Join(demo, "sunset.png")}
	for i, f := range files {
		if files[i], err = filepath.Abs(f); err != nil {
			t.Fatal(err)
		}
	}
	return url, files
}

func TestGalleryInChromium(t *testing.T) {
	needORT(t)
	url, files := galleryServe(t)
	const prompt = "a red apple on a wooden table"
	want := rankRef(t, url, "", prompt, files)

	ctx, log := browser(t)
	do(t, ctx, "open the page", chromedp.Navigate(url+"/"))
	waitFor(t, ctx, "the models", `document.querySelectorAll('#models input[name=model]').length === 3`)
	if got := eval[string](t, ctx, `document.getElementById('limit').textContent`); !strings.Contains(got, "up to 5 images") {
		t.Errorf("the drop zone says %q, want the server's --max-images (5)", got)
	}

	do(t, ctx, "pick the files", chromedp.SetUploadFiles(chromedp.ID("files"), files))
	waitFor(t, ctx, "four thumbnails", `document.querySelectorAll('#thumbs > li').length === 4`)
	// The progress row must show while the request runs.
	do(t, ctx, "watch the progress row", chromedp.Evaluate[chromedp.Void](`(() => { const row = document.getElementById('progress-row');
		window.sawProgress = false;
		new MutationObserver(() => { if (!row.hidden) window.sawProgress = true; }).observe(row, {attributes: true}); })()`))
	// Keyboard: type the prompt and press Enter, which submits the form.
	do(t, ctx, "type the prompt", chromedp.SendKeys(chromedp.ID("prompt"), prompt+"\r"))
	waitFor(t, ctx, "four cards", `document.querySelectorAll('#cards > li').length === 4 && !document.getElementById('rank').disabled`)
	checkCards(t, eval[[]card](t, ctx, readCards), want, 0)
	summary := eval[string](t, ctx, `document.getElementById('summary').textContent`)
	if ms := eval[float64](t, ctx, `Number(document.getElementById('summary').dataset.latencyMs)`); ms <= 0 || !strings.Contains(summary, "ms") || !strings.Contains(summary, "1 failed") {
		t.Errorf("summary %q, latency %v ms", summary, ms)
	}
	if !eval[bool](t, ctx, `window.sawProgress`) {
		t.Error("no progress indication while the images were scored")
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#thumbs .noimg, #cards .noimg').length`); n != 2 {
		t.Errorf("%d \"no preview\" boxes, want 2 (the broken file's thumbnail and card)", n)
	}
	noConsoleErrors(t, log)

	checkTabOrder(t, ctx)
	checkExactNumbers(t, ctx)
	checkSorting(t, ctx, want)
	screenshot(t, ctx, "gallery.png")
	checkPhoneWidth(t, ctx)

	// Fewer models: /v1/score with "models", and ICT-HP worked out in the
	// page, as /v1/rank does it (to float64 rounding).
	do(t, ctx, "untick ImageReward", chromedp.Click(chromedp.CSS(`#models input[value=imagereward]`)), chromedp.Click(chromedp.ID("rank")))
	waitFor(t, ctx, "cards without ImageReward", `!document.querySelector('#cards .score[data-score=imagereward]') && !document.getElementById('rank').disabled && document.getElementById('summary').textContent.includes('/v1/score')`)
	checkCards(t, eval[[]card](t, ctx, readCards), want, 1e-12, "imagereward")

	// At most --max-images: two more files, one kept.
	do(t, ctx, "pick two more", chromedp.SetUploadFiles(chromedp.ID("files"), files[2:]))
	waitFor(t, ctx, "five thumbnails", `document.querySelectorAll('#thumbs > li').length === 5`)
	if note := eval[string](t, ctx, `document.getElementById('file-note').textContent`); !strings.Contains(note, "1 left out") {
		t.Errorf("after 6 files the note says %q", note)
	}
	noConsoleErrors(t, log)
}

// checkExactNumbers: the exact values are hidden until the pointer is over
// a score or a card has the focus (Tab reaches the cards).
func checkExactNumbers(t *testing.T, ctx context.Context) {
	t.Helper()
	const shown = `Array.from(document.querySelectorAll('#cards .exact')).map(e => getComputedStyle(e).display !== 'none')`
	count := func() (n int) {
		for _, v := range eval[[]bool](t, ctx, shown) {
			if v {
				n++
			}
		}
		return n
	}
	if n := count(); n != 0 {
		t.Errorf("%d exact numbers show before any hover or focus", n)
	}
	xy := eval[[]float64](t, ctx, `(() => { const e = document.querySelector('#cards > li:nth-child(2) .score');
		e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();
		return [r.x + r.width / 2, r.y + r.height / 2]; })()`)
	do(t, ctx, "hover over a score", chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, xy[0], xy[1]))
	if n := count(); n != 1 {
		t.Errorf("%d exact numbers show with the pointer over one score, want 1", n)
	}
	do(t, ctx, "move away", chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 1, 1))
	do(t, ctx, "focus the first card", chromedp.Focus(chromedp.CSS("#cards > li")))
	if n, want := count(), eval[int](t, ctx, `document.querySelectorAll('#cards > li:first-child .exact').length`); n != want || n == 0 {
		t.Errorf("%d exact numbers show with the first card focused, want its %d", n, want)
	}
	do(t, ctx, "blur", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
}

// checkTabOrder: the Tab key alone reaches every control and each card.
func checkTabOrder(t *testing.T, ctx context.Context) {
	t.Helper()
	do(t, ctx, "start at the top", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur(); window.scrollTo(0, 0)`))
	reached := map[string]bool{}
	for range 30 {
		do(t, ctx, "press Tab", chromedp.KeyEvent("\t"))
		el := eval[string](t, ctx, `(() => { const a = document.activeElement;
			return a.id || (a.classList.contains('card') ? 'card ' + a.dataset.index : a.className || a.tagName); })()`)
		reached[el] = true
	}
	for _, want := range []string{"prompt", "files", "rank", "sort", "card 0", "card 1", "card 2", "card 3"} {
		if !reached[want] {
			t.Errorf("Tab never reaches %s (it reaches %v)", want, reached)
		}
	}
	do(t, ctx, "blur", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
}

// checkSorting: the selector sorts by any score, best first, the failed
// image last; back on ICT-HP the order is /v1/rank's again.
func checkSorting(t *testing.T, ctx context.Context, want []rankItem) {
	t.Helper()
	sortBy := func(name string) {
		do(t, ctx, "sort by "+name, chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('sort');
			s.value = '`+name+`'; s.dispatchEvent(new Event('change')); })()`))
	}
	sortBy("imagereward")
	byIR := append([]rankItem(nil), want[:len(want)-1]...)
	sort.SliceStable(byIR, func(a, b int) bool { return byIR[a].scores["imagereward"] > byIR[b].scores["imagereward"] })
	checkCards(t, eval[[]card](t, ctx, readCards), append(byIR, want[len(want)-1]), 0)
	sortBy("ict_hp")
	checkCards(t, eval[[]card](t, ctx, readCards), want, 0)
}

// checkPhoneWidth: at 390 px nothing is wider than the screen.
func checkPhoneWidth(t *testing.T, ctx context.Context) {
	t.Helper()
	do(t, ctx, "phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	if w := eval[[]float64](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("at phone width the page is %v px wide in a %v px window", w[0], w[1])
	}
	screenshot(t, ctx, "gallery-phone.png")
	do(t, ctx, "desktop width", chromedp.EmulateViewport(1280, 900))
}

// With tokens, the page is public but asks for a token, sends it as a
// bearer token, and asks again when the API refuses it; the API itself
// still refuses calls without one.
func TestGalleryAuthInChromium(t *testing.T) {
	needORT(t)
	t.Setenv(ortlib.EnvCache, t.TempDir())
	tokens := filepath.Join(t.TempDir(), "tokens")
	const token = "gallery-secret-1"
	if err := os.WriteFile(tokens, []byte("# test\n"+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := serveInProcess(t, "--drain-delay", "0s", "--auth-tokens-file", tokens)
	for path, status := range map[string]int{"/": http.StatusOK, "/v1/models": http.StatusUnauthorized} {
		res, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != status {
			t.Errorf("GET %s without a token: %d, want %d", path, res.StatusCode, status)
		}
	}
	apple, err := filepath.Abs(filepath.Join("..", "..", "testdata", "demo", "apple.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	sunset, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "demo", "sunset.png"))
	const prompt = "a sunset over the sea"
	want := rankRef(t, url, token, prompt, []string{apple, sunset})

	ctx, log := browser(t)
	do(t, ctx, "open the page", chromedp.Navigate(url+"/"))
	waitFor(t, ctx, "the token dialog", `document.getElementById('token-dialog').open`)
	screenshot(t, ctx, "gallery-token.png")
	do(t, ctx, "give the token", chromedp.SendKeys(chromedp.ID("token-input"), token+"\r"))
	waitFor(t, ctx, "the models", `document.querySelectorAll('#models input[name=model]').length === 2`)
	do(t, ctx, "pick the files", chromedp.SetUploadFiles(chromedp.ID("files"), []string{apple, sunset}),
		chromedp.SendKeys(chromedp.ID("prompt"), prompt), chromedp.Click(chromedp.ID("rank")))
	waitFor(t, ctx, "two cards", `document.querySelectorAll('#cards > li').length === 2`)
	checkCards(t, eval[[]card](t, ctx, readCards), want, 0)
	noConsoleErrors(t, log)

	// A wrong token: the API says 403 and the page asks again.
	do(t, ctx, "change the token", chromedp.Click(chromedp.ID("token-button")))
	waitFor(t, ctx, "the token dialog", `document.getElementById('token-dialog').open`)
	do(t, ctx, "give a wrong token", chromedp.SendKeys(chromedp.ID("token-input"), "wrong-token\r"))
	waitFor(t, ctx, "the dialog again", `document.getElementById('token-dialog').open && document.getElementById('token-message').textContent.includes('not accepted')`)
}
