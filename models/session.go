package models

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/x448/float16"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/icthp/icthp/models/ortlib"
)

// Provider is an onnxruntime execution provider.
type Provider string

// The execution providers icthp can ask onnxruntime for.
const (
	CPU      Provider = "cpu"
	CUDA     Provider = "cuda"
	TensorRT Provider = "tensorrt"
)

// ErrProvider means the onnxruntime library cannot run the requested
// execution provider (for example CUDA with the CPU-only build).
var ErrProvider = errors.New("execution provider unavailable")

// SessionOptions configure how graphs run.
type SessionOptions struct {
	Provider Provider // cpu (default), cuda, tensorrt
	DeviceID int      // GPU ordinal for cuda and tensorrt
	// IntraOpThreads is the thread count inside one operator; 0 means
	// onnxruntime's default (one per physical core).
	IntraOpThreads int
	// NoSpin stops onnxruntime's intra-op threads from spin-waiting for
	// work between operators (session.intra_op.allow_spinning = 0): the
	// cores they would burn go to decoding and HTTP, which matters where
	// those share the cores with the model (a loaded CPU server); each
	// operator then starts a little later.
	NoSpin bool
	// OptLevel is the graph optimisation level: "all" (default),
	// "extended", "basic" or "disable".
	OptLevel string
	// MaxBatch splits larger requests into runs of at most this many items;
	// 0 means no limit.
	MaxBatch int
	// LibraryPath overrides where onnxruntime is loaded from (see ortlib).
	LibraryPath string
	// EPLibrary is a plugin execution provider library for cuda
	// (onnxruntime's libonnxruntime_providers_cuda.so registered through
	// RegisterExecutionProviderLibrary); "" means $ICTHP_EP_LIBRARY, else
	// the classic CUDA API of the core library, else a CUDA provider found
	// next to the core library (ortlib.LocateEPLibrary).
	EPLibrary string
	// TF32 lets the CUDA provider run float32 MatMul and Conv with TF32
	// tensor cores (its own default; about 1e-3 relative error). icthp
	// turns it off unless asked, so float32 graphs match PyTorch's default
	// (torch.backends.cuda.matmul.allow_tf32 = False).
	TF32 bool
	// WarmUp runs one item through each graph as it opens (always done for
	// the GPU providers): a graph the provider cannot run is refused then.
	WarmUp bool
}

// ParseProvider reads "cpu", "cuda", "cuda:1" or "tensorrt[:N]".
func ParseProvider(s string) (Provider, int, error) {
	name, dev, _ := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	id := 0
	if dev != "" {
		n, err := strconv.Atoi(dev)
		if err != nil || n < 0 {
			return "", 0, fmt.Errorf("provider %q: bad device id", s)
		}
		id = n
	}
	switch Provider(name) {
	case "", CPU:
		return CPU, 0, nil
	case CUDA, TensorRT:
		return Provider(name), id, nil
	}
	return "", 0, fmt.Errorf("provider %q: want cpu, cuda[:N] or tensorrt[:N]", s)
}

func (o SessionOptions) ortOptions() (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			so.Destroy()
		}
	}()
	if o.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(o.IntraOpThreads); err != nil {
			return nil, err
		}
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	if o.NoSpin {
		for _, k := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
			if err := so.AddSessionConfigEntry(k, "0"); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	level := map[string]ort.GraphOptimizationLevel{
		"": ort.GraphOptimizationLevelEnableAll, "all": ort.GraphOptimizationLevelEnableAll,
		"extended": ort.GraphOptimizationLevelEnableExtended, "basic": ort.GraphOptimizationLevelEnableBasic,
		"disable": ort.GraphOptimizationLevelDisableAll,
	}
	lv, known := level[o.OptLevel]
	if !known {
		return nil, fmt.Errorf("graph optimisation level %q: want all, extended, basic or disable", o.OptLevel)
	}
	if err := so.SetGraphOptimizationLevel(lv); err != nil {
		return nil, err
	}
	if err := o.appendProvider(so); err != nil {
		return nil, err
	}
	ok = true
	return so, nil
}

// Session runs one graph: one input (float32, float16 or int64), one or more
// float32 outputs.
type Session struct {
	sess     *ort.DynamicAdvancedSession
	input    ort.InputOutputInfo
	outputs  []ort.InputOutputInfo
	maxBatch int
	// exec runs one batch: runGraph on sess. Tests put a fault in front of
	// it (a GPU out of memory cannot be caused on a CPU).
	exec func(ctx context.Context, in ort.Value) ([][]float32, error)
}

// OpenSession loads path and checks that it has the named input and
// outputs.
func OpenSession(path, input string, outputs []string, o SessionOptions) (*Session, error) {
	if _, err := ortlib.Init(o.LibraryPath); err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s := &Session{maxBatch: o.MaxBatch}
	found := false
	for _, in := range ins {
		if in.Name == input {
			s.input, found = in, true
		}
	}
	if !found || len(ins) != 1 {
		return nil, fmt.Errorf("%s: graph inputs %v do not match the manifest's %q", path, names(ins), input)
	}
	switch s.input.DataType {
	case ort.TensorElementDataTypeFloat, ort.TensorElementDataTypeFloat16, ort.TensorElementDataTypeInt64:
	default:
		return nil, fmt.Errorf("%s: input %s is %v, want float32, float16 or int64", path, input, s.input.DataType)
	}
	for _, want := range outputs {
		found := false
		for _, out := range outs {
			if out.Name == want {
				if out.DataType != ort.TensorElementDataTypeFloat {
					return nil, fmt.Errorf("%s: output %s is %v, want float32", path, want, out.DataType)
				}
				s.outputs = append(s.outputs, out)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: graph outputs %v lack the manifest's %q", path, names(outs), want)
		}
	}
	so, err := o.ortOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSession(path, []string{input}, outputs, so)
	if err != nil {
		if o.Provider != CPU && o.Provider != "" {
			return nil, fmt.Errorf("%w: open %s with %s: %s", ErrProvider, filepath.Base(path), o.Provider, ortlib.OneLine(err.Error()))
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.sess = sess
	s.exec = func(ctx context.Context, in ort.Value) ([][]float32, error) {
		return runGraph(ctx, sess, []ort.Value{in}, s.outputs)
	}
	if o.WarmUp || (o.Provider != CPU && o.Provider != "") {
		if err := s.warmUp(); err != nil {
			s.Close()
			return nil, fmt.Errorf("%w: %s does not run on the %s provider: %s", ErrProvider, filepath.Base(path), o.providerName(), ortlib.OneLine(err.Error()))
		}
	}
	return s, nil
}

func names(infos []ort.InputOutputInfo) []string {
	var n []string
	for _, i := range infos {
		n = append(n, i.Name)
	}
	return n
}

// InputShape is the graph's input shape with -1 for the batch dimension.
func (s *Session) InputShape() []int64 { return append([]int64(nil), s.input.Dimensions...) }

// OutputWidth is the per-item element count of output i.
func (s *Session) OutputWidth(i int) int64 {
	n := int64(1)
	for _, d := range s.outputs[i].Dimensions[1:] {
		n *= d
	}
	return n
}

// rowLen is the per-item element count of the input.
func (s *Session) rowLen() int {
	n := 1
	for _, d := range s.input.Dimensions[1:] {
		n *= int(d)
	}
	return n
}

// RunFloat runs a float32 input of n items laid out row after row, and
// returns each output as n rows. A graph whose input is float16 (an --fp16
// image graph) gets each run's rows rounded to half precision first
// (HalfFromFloat32, as the Cast inside older fp16 graphs rounds); RunHalf
// spares that pass and the float32 buffer.
func (s *Session) RunFloat(ctx context.Context, in []float32, n int) ([][]float32, error) {
	return runBatches(ctx, s, n, func(lo, hi int) (ort.Value, error) {
		rows := in[lo*s.rowLen() : hi*s.rowLen()]
		if s.HalfInput() {
			h := make([]float16.Float16, len(rows))
			HalfFromFloat32(h, rows)
			return ort.NewCustomDataTensor(s.batchShape(lo, hi), halfAsBytes(h), ort.TensorElementDataTypeFloat16)
		}
		return ort.NewTensor(s.batchShape(lo, hi), rows)
	}, len(in))
}

// batchShape is the input shape of the run of items lo..hi.
func (s *Session) batchShape(lo, hi int) ort.Shape {
	return append(ort.Shape{int64(hi - lo)}, s.input.Dimensions[1:]...)
}

// RunInt64 is RunFloat for an int64 input (token ids).
func (s *Session) RunInt64(ctx context.Context, in []int64, n int) ([][]float32, error) {
	return runBatches(ctx, s, n, func(lo, hi int) (ort.Value, error) {
		shape := append(ort.Shape{int64(hi - lo)}, s.input.Dimensions[1:]...)
		return ort.NewTensor(shape, in[lo*s.rowLen():hi*s.rowLen()])
	}, len(in))
}

func runBatches(ctx context.Context, s *Session, n int, input func(lo, hi int) (ort.Value, error), have int) ([][]float32, error) {
	if n <= 0 {
		return make([][]float32, len(s.outputs)), nil
	}
	if have != n*s.rowLen() {
		return nil, fmt.Errorf("input has %d values, %d items need %d", have, n, n*s.rowLen())
	}
	step := n
	if s.maxBatch > 0 && step > s.maxBatch {
		step = s.maxBatch
	}
	results := make([][]float32, len(s.outputs))
	for i := range results {
		results[i] = make([]float32, 0, int64(n)*s.OutputWidth(i))
	}
	one := func(lo, hi int) ([][]float32, error) {
		in, err := input(lo, hi)
		if err != nil {
			return nil, err
		}
		defer in.Destroy()
		return s.run(ctx, in)
	}
	for lo := 0; lo < n; lo += step {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		outs, err := runSplitting(ctx, lo, min(lo+step, n), one)
		if err != nil {
			return nil, err
		}
		for i, o := range outs {
			results[i] = append(results[i], o...)
		}
	}
	return results, nil
}

// run executes one batch; a cancelled context terminates the run.
func (s *Session) run(ctx context.Context, in ort.Value) ([][]float32, error) {
	res, err := s.exec(ctx, in)
	runtime.KeepAlive(in)
	return res, err
}

// runGraph runs sess on ins and copies its float32 outputs out of
// onnxruntime's memory. A context that can be cancelled gets RunOptions
// whose Terminate stops the run when the context ends; a context that
// cannot skips that cost.
func runGraph(ctx context.Context, sess *ort.DynamicAdvancedSession, ins []ort.Value, outputs []ort.InputOutputInfo) ([][]float32, error) {
	var ro *ort.RunOptions
	if ctx.Done() != nil {
		var err error
		ro, err = ort.NewRunOptions()
		if err != nil {
			return nil, err
		}
		defer ro.Destroy()
		stop := context.AfterFunc(ctx, func() { ro.Terminate() })
		defer stop()
	}
	outs := make([]ort.Value, len(outputs))
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	if err := sess.RunWithOptions(ins, outs, ro); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("onnxruntime: %w", err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		t, ok := o.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("output %s is not float32", outputs[i].Name)
		}
		res[i] = append([]float32(nil), t.GetData()...)
	}
	return res, nil
}

// Close releases the session.
func (s *Session) Close() error {
	if s == nil || s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	return err
}
