package ortlib

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The three plugin-EP calls onnxruntime_go v1.27 does not wrap, reached
// through the same OrtApi table the binding uses. OrtApi is append-only
// (onnxruntime's ABI promise), so a function's slot never moves; the slots
// below are those of onnxruntime_c_api.h at ORT_API_VERSION 24, the header
// onnxruntime_go v1.27 ships (TestAPISlots checks them against it).
enum {
	slotGetErrorMessage = 2,
	slotCreateEnv = 3,
	slotReleaseEnv = 92,
	slotReleaseStatus = 93,
	slotRegisterExecutionProviderLibrary = 301,
	slotGetEpDevices = 303,
	slotAppendExecutionProviderV2 = 304,
	slotHardwareDeviceType = 307,
	slotEpDeviceEpName = 312,
	slotEpDeviceEpVendor = 313,
	slotEpDeviceDevice = 316,
};
// The C API version asked for: the binding's, so both see one table.
#define ICTHP_ORT_API 24

typedef void *(*icthp_fn)();
typedef struct { const void *(*GetApi)(uint32_t); const char *(*GetVersionString)(void); } icthp_api_base;

static void *const *icthp_api;
static void *icthp_env;

#define FN(slot, type) ((type)icthp_api[slot])

// icthp_err turns an OrtStatus into a malloc'd message and releases it.
static char *icthp_err(void *st) {
	if (!st) return NULL;
	const char *m = FN(slotGetErrorMessage, const char *(*)(void *))(st);
	char *r = strdup(m ? m : "unknown onnxruntime error");
	FN(slotReleaseStatus, void (*)(void *))(st);
	return r;
}

// icthp_ep_init finds the OrtApi of the library already loaded from path
// and takes a reference to onnxruntime's process-wide environment
// (CreateEnv returns the one instance the binding made).
static char *icthp_ep_init(const char *path) {
	if (icthp_api) return NULL;
	void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!h) return strdup(dlerror());
	const icthp_api_base *(*base)(void) = (const icthp_api_base *(*)(void))dlsym(h, "OrtGetApiBase");
	if (!base) return strdup("no OrtGetApiBase in the library");
	const void *api = base()->GetApi(ICTHP_ORT_API);
	if (!api) return strdup("the library does not offer C API version 24");
	icthp_api = (void *const *)api;
	void *env = NULL;
	char *e = icthp_err(FN(slotCreateEnv, void *(*)(int, const char *, void **))(3, "icthp", &env));
	if (e) { icthp_api = NULL; return e; }
	icthp_env = env;
	return NULL;
}

// icthp_dlcheck loads path on its own to learn, from the dynamic loader,
// which of its dependencies is missing; onnxruntime's own message buries it.
// A library that loads stays loaded (onnxruntime loads it next anyway, and
// unloading the CUDA libraries it pulled in is not something to risk).
static char *icthp_dlcheck(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) return strdup(dlerror());
	return NULL;
}

static char *icthp_register(const char *name, const char *path) {
	return icthp_err(FN(slotRegisterExecutionProviderLibrary, void *(*)(void *, const char *, const char *))(icthp_env, name, path));
}

static char *icthp_devices(void *const **devs, size_t *n) {
	return icthp_err(FN(slotGetEpDevices, void *(*)(void *, void *const **, size_t *))(icthp_env, devs, n));
}

static void *icthp_device_at(void *const *devs, size_t i) { return devs[i]; }
static const char *icthp_ep_name(void *d) { return FN(slotEpDeviceEpName, const char *(*)(void *))(d); }
static const char *icthp_ep_vendor(void *d) { return FN(slotEpDeviceEpVendor, const char *(*)(void *))(d); }
static int icthp_hw_type(void *d) {
	void *hw = FN(slotEpDeviceDevice, void *(*)(void *))(d);
	return hw ? FN(slotHardwareDeviceType, int (*)(void *))(hw) : -1;
}

static char *icthp_append_v2(void *so, void *dev, const char **keys, const char **vals, size_t n) {
	void *devs[1] = {dev};
	return icthp_err(FN(slotAppendExecutionProviderV2, void *(*)(void *, void *, void *const *, size_t, const char *const *, const char *const *, size_t))(so, icthp_env, devs, 1, keys, vals, n));
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvEPLib names the environment variable holding a plugin execution
// provider library (onnxruntime's CUDA provider as a plugin EP).
const EnvEPLib = "ICTHP_EP_LIBRARY"

// CUDAPluginName is the file name of onnxruntime's CUDA provider library,
// looked for next to the core library when no plugin library is named.
const CUDAPluginName = "libonnxruntime_providers_cuda.so"

// ErrEPLibrary means a plugin execution provider library could not be
// loaded or registered.
var ErrEPLibrary = errors.New("execution provider library unusable")

// Hardware device types of OrtHardwareDevice (OrtHardwareDeviceType).
const (
	DeviceCPU = 0
	DeviceGPU = 1
	DeviceNPU = 2
)

// EPDevice is one (execution provider, hardware device) pair onnxruntime
// offers after plugin libraries are registered (GetEpDevices).
type EPDevice struct {
	EP, Vendor string
	Hardware   int // DeviceCPU, DeviceGPU, ...
	ptr        unsafe.Pointer
}

// The registered plugin libraries: registration name -> path. Registration
// is process-wide in onnxruntime's one environment.
var registered = map[string]string{}

// epReady makes the C side find the loaded library's API. Init must have
// succeeded first.
func epReady() error {
	if initInfo == nil {
		return fmt.Errorf("onnxruntime is not loaded yet")
	}
	cp := C.CString(initInfo.Path)
	defer C.free(unsafe.Pointer(cp))
	if e := C.icthp_ep_init(cp); e != nil {
		defer C.free(unsafe.Pointer(e))
		return fmt.Errorf("onnxruntime plugin API of %s: %s", initInfo.Path, C.GoString(e))
	}
	return nil
}

// LocateEPLibrary returns the plugin EP library to use: explicit, else
// $ICTHP_EP_LIBRARY, else the CUDA provider next to the loaded core library
// when one is there; "" when none of these names one. A named library that
// does not exist is an error naming it.
func LocateEPLibrary(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv(EnvEPLib)} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrEPLibrary, p, err)
		}
		return p, nil
	}
	initMu.Lock()
	defer initMu.Unlock()
	if initInfo == nil {
		return "", nil
	}
	p := filepath.Join(filepath.Dir(initInfo.Path), CUDAPluginName)
	if _, err := os.Stat(p); err != nil {
		return "", nil
	}
	return p, nil
}

// RegisterEPLibrary registers the plugin execution provider library at path
// under name, once per process. A library that cannot be loaded gives one
// line naming it and, when the loader says so, the missing dependency
// (libcudnn.so.9, libcublasLt.so.13, ...).
func RegisterEPLibrary(name, path string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if old, ok := registered[name]; ok {
		if old != path {
			return fmt.Errorf("%w: %s already registered from %s, not %s", ErrEPLibrary, name, old, path)
		}
		return nil
	}
	if err := epReady(); err != nil {
		return err
	}
	cp, cn := C.CString(path), C.CString(name)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cn))
	if e := C.icthp_dlcheck(cp); e != nil {
		defer C.free(unsafe.Pointer(e))
		return fmt.Errorf("%w: cannot load %s: %s", ErrEPLibrary, path, OneLine(C.GoString(e)))
	}
	if e := C.icthp_register(cn, cp); e != nil {
		defer C.free(unsafe.Pointer(e))
		return fmt.Errorf("%w: register %s: %s", ErrEPLibrary, path, OneLine(C.GoString(e)))
	}
	registered[name] = path
	return nil
}

// EPDevices lists what onnxruntime offers now: its built-in CPU provider
// and the devices of every registered plugin library.
func EPDevices() ([]EPDevice, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if err := epReady(); err != nil {
		return nil, err
	}
	var devs *unsafe.Pointer
	var n C.size_t
	if e := C.icthp_devices((**unsafe.Pointer)(unsafe.Pointer(&devs)), &n); e != nil {
		defer C.free(unsafe.Pointer(e))
		return nil, fmt.Errorf("onnxruntime GetEpDevices: %s", C.GoString(e))
	}
	out := make([]EPDevice, 0, int(n))
	for i := 0; i < int(n); i++ {
		d := C.icthp_device_at((*unsafe.Pointer)(unsafe.Pointer(devs)), C.size_t(i))
		out = append(out, EPDevice{EP: C.GoString(C.icthp_ep_name(d)), Vendor: C.GoString(C.icthp_ep_vendor(d)),
			Hardware: int(C.icthp_hw_type(d)), ptr: d})
	}
	return out, nil
}

// AppendEP adds the execution provider of dev to so
// (SessionOptionsAppendExecutionProvider_V2) with the provider's options.
func AppendEP(so *ort.SessionOptions, dev EPDevice, options map[string]string) error {
	p, err := sessionOptionsPointer(so)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ck := C.malloc(C.size_t(len(keys)+1) * C.size_t(unsafe.Sizeof(uintptr(0))))
	cv := C.malloc(C.size_t(len(keys)+1) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(ck)
	defer C.free(cv)
	ks := unsafe.Slice((**C.char)(ck), len(keys)+1)
	vs := unsafe.Slice((**C.char)(cv), len(keys)+1)
	for i, k := range keys {
		ks[i], vs[i] = C.CString(k), C.CString(options[k])
		defer C.free(unsafe.Pointer(ks[i]))
		defer C.free(unsafe.Pointer(vs[i]))
	}
	if e := C.icthp_append_v2(p, dev.ptr, (**C.char)(ck), (**C.char)(cv), C.size_t(len(keys))); e != nil {
		defer C.free(unsafe.Pointer(e))
		return fmt.Errorf("add %s to the session: %s", dev.EP, OneLine(C.GoString(e)))
	}
	return nil
}

// sessionOptionsPointer is the OrtSessionOptions* inside the binding's
// SessionOptions: its one field. The binding keeps it unexported, so the
// layout is checked here rather than assumed; an onnxruntime_go that
// changes it makes this an error (and TestSessionOptionsPointer fail), not
// a crash.
func sessionOptionsPointer(so *ort.SessionOptions) (unsafe.Pointer, error) {
	t := reflect.TypeOf(*so)
	if t.NumField() != 1 || t.Field(0).Type.Kind() != reflect.Pointer || t.Field(0).Offset != 0 {
		return nil, fmt.Errorf("onnxruntime_go's SessionOptions changed layout (%v): the plugin EP path needs updating", t)
	}
	p := *(*unsafe.Pointer)(unsafe.Pointer(so))
	if p == nil {
		return nil, fmt.Errorf("session options already destroyed")
	}
	return p, nil
}

// missingLib finds "libX.so.N: cannot open shared object file" in a loader
// message.
var missingLib = regexp.MustCompile(`(lib[A-Za-z0-9_.+-]*\.so[0-9.]*): cannot open shared object file`)

// OneLine shortens onnxruntime's and the loader's multi-line messages to one
// line; when a shared library is missing it names just that library.
func OneLine(msg string) string {
	if m := missingLib.FindStringSubmatch(msg); m != nil {
		if strings.HasPrefix(m[1], "libonnxruntime_providers") {
			// onnxruntime looks for its own provider libraries: a CPU build.
			return m[1] + " not found (a CPU-only onnxruntime: install a GPU build, README: GPUs)"
		}
		return m[1] + " not found (put the CUDA and cuDNN lib folders on LD_LIBRARY_PATH; README: GPUs)"
	}
	return strings.Join(strings.Fields(msg), " ")
}

// apiSlots are the OrtApi slots the C side calls, for TestAPISlots.
func apiSlots() map[string]int {
	return map[string]int{
		"GetErrorMessage": C.slotGetErrorMessage, "CreateEnv": C.slotCreateEnv, "ReleaseEnv": C.slotReleaseEnv,
		"ReleaseStatus": C.slotReleaseStatus, "RegisterExecutionProviderLibrary": C.slotRegisterExecutionProviderLibrary,
		"GetEpDevices": C.slotGetEpDevices, "SessionOptionsAppendExecutionProvider_V2": C.slotAppendExecutionProviderV2,
		"HardwareDevice_Type": C.slotHardwareDeviceType, "EpDevice_EpName": C.slotEpDeviceEpName,
		"EpDevice_EpVendor": C.slotEpDeviceEpVendor, "EpDevice_Device": C.slotEpDeviceDevice,
	}
}
