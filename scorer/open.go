package scorer

import (
	"io"

	"github.com/icthp/icthp/models"
)

// GraphOpener is the Entry.Open of a model kind whose directories hold
// ONNX graphs that models.Open opens (ict, hp, the reward zoo): it opens
// them with OpenOptions.Session, puts OpenOptions.Encoder (serve's batcher)
// in front of them under the kind's registry name, and makes the scorer
// with newScorer. The closer releases the sessions; on any error they are
// released at once.
func GraphOpener[S Scorer](name string, newScorer func(dir string, man *models.Manifest, enc models.BatchEncoder) (S, error)) func(dir string, o OpenOptions) (Scorer, io.Closer, error) {
	return func(dir string, o OpenOptions) (Scorer, io.Closer, error) {
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
		s, err := newScorer(dir, md.Manifest, enc)
		if err != nil {
			md.Close()
			return nil, nil, err
		}
		return s, md, nil
	}
}
