package check

import (
	"os"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// icthpArgs returns the icthp command line a container runs: its args when
// the image's ENTRYPOINT (icthp) runs, command+args when command is icthp,
// or the words after "icthp" in a `sh -c` script, up to the end of that
// shell command.
func icthpArgs(c corev1.Container) []string {
	all := append(append([]string{}, c.Command...), c.Args...)
	if len(c.Command) == 0 {
		return c.Args
	}
	if strings.HasSuffix(all[0], "icthp") {
		return all[1:]
	}
	if (all[0] == "sh" || all[0] == "bash" || strings.HasSuffix(all[0], "/sh") || strings.HasSuffix(all[0], "/bash")) && len(all) >= 3 && all[1] == "-c" {
		words := strings.Fields(strings.ReplaceAll(all[2], "\\\n", " "))
		for i, w := range words {
			if strings.HasSuffix(w, "icthp") && i+1 < len(words) && words[i+1] == "batch" {
				var out []string
				for _, x := range words[i+1:] {
					if x == "&&" || x == ";" || x == "||" || x == "|" {
						break
					}
					out = append(out, strings.Trim(x, `"'`))
				}
				return out
			}
		}
	}
	return nil
}

func TestBatchJob(t *testing.T) {
	file := repoPath("deployments", "k8s", "batch-job.yaml")
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		t.Skip("deployments/k8s/batch-job.yaml does not exist yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	var jobs []*batchv1.Job
	for _, doc := range SplitYAML(string(b)) {
		o, err := Decode([]byte(doc))
		if err != nil {
			t.Errorf("batch-job.yaml: %v", err)
			continue
		}
		if j, ok := o.Value.(*batchv1.Job); ok {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		t.Fatal("batch-job.yaml holds no Job")
	}
	for _, j := range jobs {
		if j.Spec.CompletionMode == nil || *j.Spec.CompletionMode != batchv1.IndexedCompletion {
			t.Errorf("Job %s is not an Indexed Job", j.Name)
		}
		if j.Spec.Completions == nil {
			t.Fatalf("Job %s has no completions", j.Name)
		}
		n := int(*j.Spec.Completions)
		found := false
		for _, c := range j.Spec.Template.Spec.Containers {
			args := icthpArgs(c)
			if len(args) == 0 || args[0] != "batch" {
				continue
			}
			found = true
			checkFlags(t, "Job "+j.Name+" container "+c.Name, args)
			shard := ""
			for i, a := range args {
				if (a == "--shard" || a == "-shard") && i+1 < len(args) {
					shard = args[i+1]
				} else if v, ok := strings.CutPrefix(a, "--shard="); ok {
					shard = v
				}
			}
			idx, of, ok := strings.Cut(shard, "/")
			if !ok || !strings.Contains(idx, "JOB_COMPLETION_INDEX") {
				t.Errorf("Job %s: --shard %q does not use $JOB_COMPLETION_INDEX", j.Name, shard)
				continue
			}
			if got, err := strconv.Atoi(of); err != nil || got != n {
				t.Errorf("Job %s: --shard %s splits into %s shards, the Job has %d completions", j.Name, shard, of, n)
			}
		}
		if !found {
			t.Errorf("Job %s runs no `icthp batch`", j.Name)
		}
		if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever && j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("Job %s: restartPolicy %q", j.Name, j.Spec.Template.Spec.RestartPolicy)
		}
	}
}

func TestIcthpArgs(t *testing.T) {
	for _, tc := range []struct {
		c    corev1.Container
		want string
	}{
		{corev1.Container{Args: []string{"batch", "--shard", "$(JOB_COMPLETION_INDEX)/4"}}, "batch --shard $(JOB_COMPLETION_INDEX)/4"},
		{corev1.Container{Command: []string{"icthp"}, Args: []string{"batch", "--out", "x"}}, "batch --out x"},
		{corev1.Container{Command: []string{"/bin/sh", "-c", "set -e\nicthp batch --shard \"$JOB_COMPLETION_INDEX/8\" --out /o/x.jsonl && echo done"}}, "batch --shard $JOB_COMPLETION_INDEX/8 --out /o/x.jsonl"},
		{corev1.Container{Command: []string{"sleep"}, Args: []string{"1"}}, ""},
	} {
		if got := strings.Join(icthpArgs(tc.c), " "); got != tc.want {
			t.Errorf("icthpArgs(%v) = %q, want %q", tc.c.Command, got, tc.want)
		}
	}
}
