package imagereward_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server/servertest"
)

// The HTTP front door over loopback, ImageReward beside HP: /v1/score has
// the imagereward field (narrowed by "models"), /v1/reward takes it alone
// and in a weighted sum, /v1/rank reports it (and ranks by it when it is
// the only model), /v1/models lists it; every number equals the scorer's
// own.
func TestHTTPImageRewardBesideHP(t *testing.T) {
	orttest.Need(t)
	ir, ts := imageRewardBesideHPServer(t)

	images := readImages(t, "rgb8_100x80.png", "p8_310x215.gif")
	const prompt = "a lighthouse at dusk"
	want, errs, err := score(context.Background(), ir, prompt, images)
	if err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatal(err, errs)
	}
	b64 := []string{base64.StdEncoding.EncodeToString(images[0].Data), base64.StdEncoding.EncodeToString(images[1].Data)}
	post := func(path string, body any) map[string]json.RawMessage { return postOK(t, ts.URL+path, body) }
	type score struct {
		HP          *float64 `json:"hp"`
		ImageReward *float64 `json:"imagereward"`
	}
	for _, c := range []struct {
		models []string
		hp     bool
	}{{nil, true}, {[]string{"imagereward"}, false}} {
		body := map[string]any{"prompt": prompt, "images": b64}
		if c.models != nil {
			body["models"] = c.models
		}
		out := post("/v1/score", body)
		var scores []score
		if err := json.Unmarshal(out["scores"], &scores); err != nil {
			t.Fatal(err)
		}
		for i, sc := range scores {
			if sc.ImageReward == nil || math.Abs(*sc.ImageReward-want[i]) > 1e-12 || (sc.HP != nil) != c.hp {
				t.Errorf("models %v, image %d: %s, want imagereward %g", c.models, i, out["scores"], want[i])
			}
		}
		if !strings.Contains(string(out["models"]), ir.Version()) {
			t.Errorf("models %s lack %s", out["models"], ir.Version())
		}
	}

	// Without a prompt only HP runs.
	out := post("/v1/score", map[string]any{"images": b64})
	var noPrompt []score
	if err := json.Unmarshal(out["scores"], &noPrompt); err != nil {
		t.Fatal(err)
	}
	if noPrompt[0].ImageReward != nil || noPrompt[0].HP == nil {
		t.Errorf("no prompt: %s", out["scores"])
	}
	hpv := *noPrompt[0].HP

	items := []map[string]any{{"prompt": prompt, "image": b64[0]}, {"prompt": prompt, "image": b64[1]}}
	var rewards []float64
	if err := json.Unmarshal(post("/v1/reward", map[string]any{"items": items, "reward": "imagereward"})["rewards"], &rewards); err != nil {
		t.Fatal(err)
	}
	if len(rewards) != 2 || math.Abs(rewards[0]-want[0]) > 1e-12 || math.Abs(rewards[1]-want[1]) > 1e-12 {
		t.Errorf("reward imagereward: %v, want %v", rewards, want)
	}
	if err := json.Unmarshal(post("/v1/reward", map[string]any{"items": items, "weights": map[string]float64{"imagereward": 2, "hp": 0.5}})["rewards"], &rewards); err != nil {
		t.Fatal(err)
	}
	if w := 2*want[0] + 0.5*hpv; math.Abs(rewards[0]-w) > 1e-9 {
		t.Errorf("weighted reward %g, want 2·%g + 0.5·%g = %g", rewards[0], want[0], hpv, w)
	}

	checkRankBesideHP(t, ts.URL, ir, prompt, images, b64, want)

	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `"imagereward"`) || !strings.Contains(string(raw), ir.Version()) {
		t.Errorf("/v1/models: %s", raw)
	}
}

// imageRewardBesideHPServer serves tiny random ImageReward and HP models
// on loopback; both close when the test ends.
func imageRewardBesideHPServer(t *testing.T) (*imagereward.Scorer, *httptest.Server) {
	t.Helper()
	irDir, hpDir := t.TempDir(), t.TempDir()
	if _, err := blip.WriteRandomDir(blip.PresetTiny, 2, irDir, blip.BuildOptions{Fused: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := testmodels.RandomDir(hpDir, models.KindHP, 3, nil, clip.BuildOptions{Fused: true}); err != nil {
		t.Fatal(err)
	}
	set, err := modelset.Open(modelset.Options{Dirs: map[string]string{hp.Name: hpDir, imagereward.Name: irDir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	return set.Models[1].Scorer.(*imagereward.Scorer), servertest.Serve(t, set.Service)
}

// postOK posts body as JSON to url, requires 200 and returns the answer's
// top-level fields.
func postOK(t *testing.T, url string, body any) map[string]json.RawMessage {
	t.Helper()
	var out map[string]json.RawMessage
	servertest.PostOK(t, url, body, &out)
	return out
}

// checkRankBesideHP: /v1/rank ranks by HP with ImageReward's score beside
// it; a service with ImageReward alone ranks by its score (want).
func checkRankBesideHP(t *testing.T, url string, ir *imagereward.Scorer, prompt string, images []scoring.Image, b64 []string, want []float64) {
	t.Helper()
	// /v1/rank: by HP here, ImageReward's score beside it.
	type ranked struct {
		Index       int      `json:"index"`
		HP          *float64 `json:"hp"`
		ImageReward *float64 `json:"imagereward"`
	}
	var ranking []ranked
	if err := json.Unmarshal(postOK(t, url+"/v1/rank", map[string]any{"prompt": prompt, "images": b64})["ranking"], &ranking); err != nil {
		t.Fatal(err)
	}
	if len(ranking) != 2 || ranking[0].HP == nil || ranking[1].HP == nil || *ranking[0].HP < *ranking[1].HP ||
		ranking[0].ImageReward == nil || *ranking[0].ImageReward != want[ranking[0].Index] {
		t.Errorf("rank with hp and imagereward: %+v", ranking)
	}
	// With ImageReward alone, by its score.
	irOnly, err := scoring.New([]scorer.Model{{Spec: imagereward.Entry.Spec, Scorer: ir}}, scoring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rk, err := irOnly.Rank(context.Background(), prompt, images)
	if err != nil {
		t.Fatal(err)
	}
	best := 0
	if want[1] > want[0] {
		best = 1
	}
	if len(rk.Ranking) != 2 || rk.Ranking[0].Index != best || *rk.Ranking[0].Get("imagereward") != want[best] {
		t.Errorf("rank by imagereward alone: %+v, scores %v", rk.Ranking, want)
	}
}
