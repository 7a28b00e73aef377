package loadtest_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"testing"
	"time"

	"github.com/icthp/icthp/loadtest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/server/servertest"
)

// A real server (tiny random ICT and HP behind the real HTTP stack) takes
// the tensor bodies of Config.Raw and the form bodies of Config.Multipart
// on every route: all answered 200.
func TestRawAndMultipartAgainstServer(t *testing.T) {
	if _, err := ortlib.Init(""); err != nil {
		t.Skipf("onnxruntime: %v", err)
	}
	dirs, err := modelset.RandomModels(t.TempDir(), 3, 300)
	if err != nil {
		t.Fatal(err)
	}
	set, err := modelset.Open(modelset.Options{Dirs: dirs, Open: scorer.OpenOptions{Session: models.SessionOptions{IntraOpThreads: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	srv := servertest.Serve(t, set.Service)
	var imgs []loadtest.Image
	for i := range 3 {
		img := image.NewRGBA(image.Rect(0, 0, 40, 30))
		for j := range img.Pix {
			img.Pix[j] = uint8(j*7 + i*31)
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		imgs = append(imgs, loadtest.Image{Name: "x.png", Data: b.Bytes()})
	}
	for _, raw := range []bool{true, false} {
		for _, route := range []string{loadtest.RouteScore, loadtest.RouteRank, loadtest.RouteReward} {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			rep, err := loadtest.Run(ctx, loadtest.Config{URL: srv.URL, Route: route, Concurrency: 2, Requests: 6,
				Images: imgs, ImagesPerRequest: 2, Raw: raw, Multipart: !raw}, nil)
			cancel()
			if err != nil || rep.OK != 6 || rep.Errors != 0 {
				t.Errorf("%s (raw %v, multipart %v): %v; report %+v", route, raw, !raw, err, rep)
			}
		}
	}
}
