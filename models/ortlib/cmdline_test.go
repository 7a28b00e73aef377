package ortlib

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A process whose command line is over MaxCommandLine gets an error from
// Init instead of onnxruntime's stack overflow. The test re-runs its own
// binary with a 40 KB argument (the crash needs a real command line, which
// an in-process call cannot fake); the child calls Init and reports.
func TestLongCommandLine(t *testing.T) {
	if os.Getenv("ICTHP_ORTLIB_CHILD") == "1" {
		_, err := Init("")
		if err == nil || !strings.Contains(err.Error(), "command line is") {
			t.Fatalf("Init with a long command line: %v", err)
		}
		return
	}
	if _, err := Locate(""); err != nil {
		t.Skipf("onnxruntime is not installed (run `make setup`): %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLongCommandLine$", "-test.v", strings.Repeat("x", 40000))
	cmd.Env = append(os.Environ(), "ICTHP_ORTLIB_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLongCommandLine") {
		t.Fatalf("child: %v\n%.2000s", err, out)
	}
}
