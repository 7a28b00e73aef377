package clipscore

// NewForTest is a Scorer with only a weight, for testing Head.
func NewForTest(w float64) *Scorer { return &Scorer{name: Name, weight: w} }
