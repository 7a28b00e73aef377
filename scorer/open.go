package scorer

import (
	"io"

	"github.com/icthp/icthp/models"
)

// OpenGraphs is what every Entry.Open over a model directory of ONNX graphs
// does: open the graphs with o.Session, put o.Encoder (serve's batcher) in
// front of them under the model's registry name, and let build make the
// scorer of the manifest and that encoder. The closer releases the
// sessions; on any error they are released here.
func OpenGraphs(dir string, o OpenOptions, name string, build func(man *models.Manifest, enc models.BatchEncoder) (Scorer, error)) (Scorer, io.Closer, error) {
	md, err := models.Open(dir, o.Session)
	if err != nil {
		return nil, nil, err
	}
	var enc models.BatchEncoder = md
	if o.Encoder != nil {
		if enc, err = o.Encoder(name, md); err != nil {
			md.Close()
			return nil, nil, err
		}
	}
	s, err := build(md.Manifest, enc)
	if err != nil {
		md.Close()
		return nil, nil, err
	}
	return s, md, nil
}
