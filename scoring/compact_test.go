package scoring

import (
	"errors"
	"fmt"
	"testing"
)

// compact drops the rows of failed images and keeps the others in order,
// moving them down in place; with no failure it returns its input as is.
func TestCompact(t *testing.T) {
	bad := errors.New("bad image")
	const l = 3
	cases := []struct {
		name   string
		failed []int // image indices that failed
	}{
		{"none", nil}, {"first", []int{0}}, {"middle", []int{2}}, {"last", []int{4}},
		{"several", []int{0, 2, 3}}, {"all", []int{0, 1, 2, 3, 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Rows of images 4, 0, 1, 2, 3 (not in index order); row k holds
			// the values 10*image + 0..2.
			rows := []int{4, 0, 1, 2, 3}
			pix := make([]float32, 0, len(rows)*l)
			for _, i := range rows {
				pix = append(pix, float32(10*i), float32(10*i+1), float32(10*i+2))
			}
			errs := make([]error, 5)
			for _, i := range c.failed {
				errs[i] = bad
			}
			var wantRows []int
			var wantPix []float32
			for _, i := range rows {
				if errs[i] == nil {
					wantRows = append(wantRows, i)
					wantPix = append(wantPix, float32(10*i), float32(10*i+1), float32(10*i+2))
				}
			}
			gotPix, gotRows := compact(pix, rows, errs, l)
			if fmt.Sprint(gotRows) != fmt.Sprint(wantRows) || fmt.Sprint(gotPix) != fmt.Sprint(wantPix) {
				t.Errorf("rows %v pix %v, want %v %v", gotRows, gotPix, wantRows, wantPix)
			}
		})
	}
}
