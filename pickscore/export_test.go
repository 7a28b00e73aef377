package pickscore

// NewForTest is a Scorer with only a logit scale, for testing Head.
func NewForTest(logitScale float64) *Scorer { return &Scorer{logitScale: logitScale} }
