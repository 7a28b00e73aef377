package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

func newClient(t *testing.T, url string) *api.Client {
	t.Helper()
	c, err := api.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ptrNear(t *testing.T, what string, got, want *float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: missing", what)
	}
	near(t, what, *got, want)
}

// TestClientRoutes drives every route through api.Client and checks the
// numbers against the reference service (no batcher) over the same models.
func TestClientRoutes(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	c := newClient(t, e.url)
	ctx := context.Background()
	files := [][]byte{pngBytes(t, 1, 40, 30), jpegBytes(t, 2, 64, 48)}
	imgs := []api.Image{api.File(files[0]), api.File(files[1])}
	simgs := []scoring.Image{{Data: files[0]}, {Data: files[1]}}
	prompt := "a red apple"

	ref, err := e.ref.Score(ctx, scoring.ScoreRequest{Prompt: &prompt, Images: simgs})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := c.Score(ctx, &api.ScoreRequest{Prompt: api.String(prompt), Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Scores) != 2 || sc.Models[api.ModelICT] == "" || sc.Models[api.ModelHP] == "" {
		t.Fatalf("score: %+v", sc)
	}
	checkScoresLikeRef(t, sc.Scores, ref.Scores)

	// "models" narrows by registry name: hp alone gives hp's outputs only.
	only, err := c.Score(ctx, &api.ScoreRequest{Prompt: api.String(prompt), Images: imgs[:1], Models: []string{api.ModelHP}})
	if err != nil {
		t.Fatal(err)
	}
	if v := only.Scores[0].Values; len(v) != 2 || v[0].Name != "hp" || v[1].Name != "hp_logit" || len(only.Models) != 1 {
		t.Fatalf("score with models [hp]: %+v, models %v", v, only.Models)
	}
	ptrNear(t, "narrowed hp", only.Scores[0].Get("hp"), ref.Scores[0].Get("hp"))

	rk, err := c.Rank(ctx, &api.RankRequest{Prompt: api.String(prompt), Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	rref, err := e.ref.Rank(ctx, prompt, simgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rk.Ranking {
		if r.Index != rref.Ranking[i].Index {
			t.Errorf("rank %d: image %d, want %d", i, r.Index, rref.Ranking[i].Index)
		}
		ptrNear(t, "ict_hp", r.ICTHP, rref.Ranking[i].ICTHP)
		ptrNear(t, "ranked ict", r.Get("ict"), rref.Ranking[i].Scores.Get("ict"))
		ptrNear(t, "ranked hp_logit", r.Get("hp_logit"), rref.Ranking[i].Scores.Get("hp_logit"))
	}

	rw, err := c.Reward(ctx, &api.RewardRequest{Items: []api.RewardItem{{Prompt: api.String(prompt), Image: imgs[0]}, {Prompt: api.String("a dog"), Image: api.File([]byte("not an image"))}},
		Weights: map[string]float64{"ict": 1, "hp": 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rw.Rewards) != 2 || rw.Rewards[1] != nil || len(rw.Errors) != 1 || rw.Errors[0].Index != 1 || rw.Errors[0].Code != api.CodeUnsupportedImage {
		t.Fatalf("reward with a bad item: %+v", rw)
	}
	ptrNear(t, "reward", rw.Rewards[0], new(*ref.Scores[0].Get("ict")+0.5**ref.Scores[0].Get("hp")))
	for _, v := range ref.Scores[0].Values {
		col := rw.Column(v.Name)
		if len(col) != 2 || col[1] != nil {
			t.Fatalf("reward column %q: %v, want 2 values, the failed item's nil", v.Name, col)
		}
		ptrNear(t, "reward column "+v.Name, col[0], ref.Scores[0].Get(v.Name))
	}
	if len(rw.Columns) != len(ref.Scores[0].Values) {
		t.Errorf("reward columns %d, want one per score (%d)", len(rw.Columns), len(ref.Scores[0].Values))
	}
}

// checkScoresLikeRef: each image has every score the reference computed, in
// its (registry) order, with the reference's values.
func checkScoresLikeRef(t *testing.T, got []api.Scores, ref []scoring.Scores) {
	t.Helper()
	for i, s := range got {
		if len(s.Values) != len(ref[i].Values) {
			t.Fatalf("image %d: scores %+v, want %+v", i, s.Values, ref[i].Values)
		}
		for k, v := range ref[i].Values {
			if s.Values[k].Name != v.Name {
				t.Errorf("image %d score %d: %q, want %q", i, k, s.Values[k].Name, v.Name)
			}
			ptrNear(t, v.Name, s.Get(v.Name), ref[i].Get(v.Name))
		}
	}
}

// TestClientEmbedModelsJobs: the other routes through api.Client.
func TestClientEmbedModelsJobs(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	c := newClient(t, e.url)
	ctx := context.Background()
	imgs := []api.Image{api.File(pngBytes(t, 1, 40, 30))}
	prompt := "a red apple"
	em, err := c.Embed(ctx, &api.EmbedRequest{Texts: []string{prompt}, Images: imgs[:1]})
	if err != nil {
		t.Fatal(err)
	}
	tref, err := e.ref.EmbedTexts(ctx, []string{prompt})
	if err != nil {
		t.Fatal(err)
	}
	if len(em.TextEmbeddings) != 1 || len(em.ImageEmbeddings) != 1 || len(em.TextEmbeddings[0]) != len(tref[0]) {
		t.Fatalf("embed: %d texts, %d images", len(em.TextEmbeddings), len(em.ImageEmbeddings))
	}
	for i, v := range em.TextEmbeddings[0] {
		if d := float64(v - tref[0][i]); d > 1e-6 || d < -1e-6 {
			t.Fatalf("text embedding [%d]: %v, want %v", i, v, tref[0][i])
		}
	}

	ms, err := c.Models(ctx)
	if err != nil || len(ms.Models) != 2 {
		t.Fatalf("models: %+v, %v", ms, err)
	}
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Errorf("health: %+v, %v", h, err)
	}
	if r, err := c.Ready(ctx); err != nil || r.Status != "ready" || r.Models[api.ModelHP] == "" {
		t.Errorf("ready: %+v, %v", r, err)
	}

	// Jobs: the result is the synchronous answer.
	job, err := c.SubmitJob(ctx, "score", &api.ScoreRequest{Images: imgs[:1]}, "")
	if err != nil || job.Status != api.JobPending || job.ID == "" {
		t.Fatalf("submit: %+v, %v", job, err)
	}
	for job.Status == api.JobPending {
		time.Sleep(10 * time.Millisecond)
		if job, err = c.Job(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
	}
	if job.Status != api.JobDone || job.HTTPStatus != 200 || len(job.Result) == 0 || job.Finished == nil {
		t.Errorf("job: %+v", job)
	}
}

// TestClientErrors: an error answer is an *api.Error with its status,
// code, message and request id.
func TestClientErrors(t *testing.T) {
	e := newEnv(t, envConfig{noICT: true}, true)
	c := newClient(t, e.url)
	ctx := context.Background()
	cases := []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"no images", func() error { _, err := c.Score(ctx, &api.ScoreRequest{}); return err }, 400, api.CodeBadRequest},
		{"model not loaded", func() error {
			_, err := c.Score(ctx, &api.ScoreRequest{Prompt: api.String("a"), Images: []api.Image{api.File(pngBytes(t, 1, 8, 8))}, Models: []string{"ict"}})
			return err
		}, 400, api.CodeBadRequest},
		{"undecodable", func() error {
			_, err := c.Score(ctx, &api.ScoreRequest{Images: []api.Image{api.File([]byte("\x89PNG\r\n\x1a\nshort"))}})
			return err
		}, 422, api.CodeUndecodable},
		{"bad tensor", func() error {
			_, err := c.Embed(ctx, &api.EmbedRequest{Images: []api.Image{api.Pixels(2, 2, make([]byte, 5))}})
			return err
		}, 400, api.CodeBadRequest},
		{"no such job", func() error { _, err := c.Job(ctx, "nope"); return err }, 404, api.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae *api.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *api.Error", err, err)
			}
			if ae.Status != tc.status || ae.Code != tc.code || ae.Message == "" || ae.RequestID == "" || ae.Temporary() {
				t.Errorf("got %+v, want %d %s with a message and a request id", ae, tc.status, tc.code)
			}
		})
	}
	// A transport failure is not an *api.Error, and wraps the cause.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err := newClient(t, "http://"+addr).Health(ctx)
	var ae *api.Error
	if err == nil || errors.As(err, &ae) {
		t.Errorf("closed port: %v, want a transport error", err)
	}
}

// TestClientRetryAfter: a 503 while draining comes with Retry-After, which
// the client exposes.
func TestClientRetryAfter(t *testing.T) {
	e := newEnv(t, envConfig{noICT: true, server: server.Options{DrainDelay: 5 * time.Second, Grace: time.Second}}, false)
	stop, ran := e.run(t)
	waitFor(t, e.srv.Ready)
	stop()
	waitFor(t, func() bool { return !e.srv.Ready() })
	c := newClient(t, e.url)
	_, err := c.Score(context.Background(), &api.ScoreRequest{Images: []api.Image{api.File(pngBytes(t, 1, 8, 8))}})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != api.CodeDraining || ae.RetryAfter != time.Second || !ae.Temporary() {
		t.Errorf("while draining: %v (%+v), want 503 draining with RetryAfter 1s", err, ae)
	}
	if !api.IsStatus(err, 503) {
		t.Errorf("IsStatus(err, 503) is false")
	}
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
}
