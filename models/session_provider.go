package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/icthp/icthp/models/ortlib"
)

// ErrOutOfMemory means the provider ran out of device memory on a batch
// even after splitting it down to one item. The server answers 503 for that
// request; the process and the other requests go on.
var ErrOutOfMemory = errors.New("out of device memory")

// cudaPluginName is the registration name of a plugin CUDA provider library.
const cudaPluginName = "icthp-cuda"

// appendProvider adds the execution provider of o to so; the CPU provider
// is onnxruntime's default and needs nothing.
func (o SessionOptions) appendProvider(so *ort.SessionOptions) error {
	switch o.Provider {
	case "", CPU:
		return nil
	case CUDA:
		return o.appendCUDA(so)
	case TensorRT:
		return o.appendTensorRT(so)
	}
	return fmt.Errorf("%w: %q", ErrProvider, o.Provider)
}

func (o SessionOptions) providerName() Provider {
	if o.Provider == "" {
		return CPU
	}
	return o.Provider
}

// cudaOptions are the CUDA provider's options, the same keys for the classic
// API and for a plugin library.
func (o SessionOptions) cudaOptions(withDevice bool) map[string]string {
	m := map[string]string{"use_tf32": "0"}
	if o.TF32 {
		m["use_tf32"] = "1"
	}
	if withDevice {
		m["device_id"] = strconv.Itoa(o.DeviceID)
	}
	return m
}

// appendCUDA uses a plugin CUDA library when one is named (flag or
// $ICTHP_EP_LIBRARY); otherwise the core library's classic CUDA API (the
// official GPU builds), and when the core has none (the npm ORT 1.29 kit:
// "CUDA execution provider is not enabled in this build") the CUDA
// provider library lying next to it, as a plugin.
func (o SessionOptions) appendCUDA(so *ort.SessionOptions) error {
	if o.EPLibrary == "" && os.Getenv(ortlib.EnvEPLib) == "" {
		classic := o.appendClassicCUDA(so)
		if classic == nil {
			return nil
		}
		lib, err := ortlib.LocateEPLibrary("")
		if err != nil || lib == "" {
			return fmt.Errorf("%w: cuda: %s; no plugin CUDA library given (--ep-library, $%s) or beside the core",
				ErrProvider, ortlib.OneLine(classic.Error()), ortlib.EnvEPLib)
		}
		return o.appendPluginCUDA(so, lib)
	}
	lib, err := ortlib.LocateEPLibrary(o.EPLibrary)
	if err != nil {
		return fmt.Errorf("%w: cuda: %w", ErrProvider, err)
	}
	return o.appendPluginCUDA(so, lib)
}

func (o SessionOptions) appendClassicCUDA(so *ort.SessionOptions) error {
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer co.Destroy()
	if err := co.Update(o.cudaOptions(true)); err != nil {
		return err
	}
	return so.AppendExecutionProviderCUDA(co)
}

// appendPluginCUDA registers lib (once per process) and adds the DeviceID-th
// CUDA device it offers.
func (o SessionOptions) appendPluginCUDA(so *ort.SessionOptions, lib string) error {
	if err := ortlib.RegisterEPLibrary(cudaPluginName, lib); err != nil {
		return fmt.Errorf("%w: cuda: %w", ErrProvider, err)
	}
	devs, err := ortlib.EPDevices()
	if err != nil {
		return fmt.Errorf("%w: cuda: %w", ErrProvider, err)
	}
	var gpus []ortlib.EPDevice
	for _, d := range devs {
		if d.EP == "CUDAExecutionProvider" {
			gpus = append(gpus, d)
		}
	}
	if o.DeviceID >= len(gpus) {
		return fmt.Errorf("%w: cuda:%d: the CUDA provider of %s sees %d GPU(s) (driver loaded? CUDA_VISIBLE_DEVICES?)",
			ErrProvider, o.DeviceID, lib, len(gpus))
	}
	if err := ortlib.AppendEP(so, gpus[o.DeviceID], o.cudaOptions(false)); err != nil {
		return fmt.Errorf("%w: cuda: %w", ErrProvider, err)
	}
	return nil
}

func (o SessionOptions) appendTensorRT(so *ort.SessionOptions) error {
	to, err := ort.NewTensorRTProviderOptions()
	if err != nil {
		return fmt.Errorf("%w: tensorrt: %s", ErrProvider, ortlib.OneLine(err.Error()))
	}
	defer to.Destroy()
	if err := to.Update(map[string]string{"device_id": strconv.Itoa(o.DeviceID)}); err != nil {
		return fmt.Errorf("%w: tensorrt: %s", ErrProvider, ortlib.OneLine(err.Error()))
	}
	if err := so.AppendExecutionProviderTensorRT(to); err != nil {
		return fmt.Errorf("%w: tensorrt (this onnxruntime build may lack it): %s", ErrProvider, ortlib.OneLine(err.Error()))
	}
	// TensorRT hands the nodes it cannot take to CUDA; without CUDA they
	// fall back to the CPU, which is still correct.
	_ = o.appendClassicCUDA(so)
	return nil
}

// oomPattern matches onnxruntime's CUDA out-of-memory messages: the CUDA
// runtime's, the BFC arena's, cuBLAS's and cuDNN's.
var oomPattern = regexp.MustCompile(`(?i)out of memory|failed to allocate|ALLOC_FAILED|smaller than requested bytes`)

// classifyRunError marks an out-of-memory failure of one run with
// ErrOutOfMemory so that the caller can split the batch.
func classifyRunError(err error) error {
	if err == nil || errors.Is(err, ErrOutOfMemory) || !oomPattern.MatchString(err.Error()) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrOutOfMemory, err)
}

// runSplitting runs items [lo, hi) with run; a run that fails for lack of
// device memory is retried as two halves, down to single items, so that a
// batch too large for the GPU at this moment still completes. A single item
// that does not fit returns ErrOutOfMemory.
func runSplitting(ctx context.Context, lo, hi int, run func(lo, hi int) ([][]float32, error)) ([][]float32, error) {
	out, err := run(lo, hi)
	err = classifyRunError(err)
	if err == nil || !errors.Is(err, ErrOutOfMemory) || hi-lo == 1 {
		return out, err
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	mid := lo + (hi-lo)/2
	a, err := runSplitting(ctx, lo, mid, run)
	if err != nil {
		return nil, err
	}
	b, err := runSplitting(ctx, mid, hi, run)
	if err != nil {
		return nil, err
	}
	for i := range a {
		a[i] = append(a[i], b[i]...)
	}
	return a, nil
}

// warmUp runs one item of zeros through a freshly opened session, so that a
// graph the provider cannot run (an unsupported or failing kernel) is
// refused when the model opens, not on the first request. It is done for
// the GPU providers, where kernels are chosen and compiled on the first
// run, and when SessionOptions.WarmUp asks for it.
func (s *Session) warmUp() error {
	for _, d := range s.input.Dimensions[1:] {
		if d < 0 {
			return nil // other symbolic dimensions: no shape to invent
		}
	}
	n := s.rowLen()
	var err error
	if s.input.DataType == ort.TensorElementDataTypeInt64 {
		_, err = s.RunInt64(context.Background(), make([]int64, n), 1)
	} else {
		_, err = s.RunFloat(context.Background(), make([]float32, n), 1)
	}
	if err != nil {
		return fmt.Errorf("warm-up run: %w", err)
	}
	return nil
}
