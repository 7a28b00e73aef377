package check

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"sigs.k8s.io/yaml"
)

// KubeVersion is the cluster version charts are rendered for: the oldest the
// chart supports (Chart.yaml kubeVersion), so that nothing newer slips in.
const KubeVersion = "v1.30.0"

// Manifest is one rendered YAML document.
type Manifest struct {
	Template string // the template file it came from
	Body     string
}

// RenderChart renders the chart in dir as `helm template NAME dir -f
// VALUES...` would: the value files merged in order over the chart's
// values.yaml, then overrides (a nested map) over them. The engine runs in
// strict mode, so a template reading a value that does not exist fails.
func RenderChart(dir, release string, valueFiles []string, overrides map[string]any) ([]Manifest, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	if ch.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, KubeVersion) {
		return nil, fmt.Errorf("chart %s requires Kubernetes %s, not %s", dir, ch.Metadata.KubeVersion, KubeVersion)
	}
	vals := map[string]any{}
	for _, f := range valueFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("values %s: %w", f, err)
		}
		vals = mergeMaps(vals, m)
	}
	vals = mergeMaps(vals, overrides)
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: release, Namespace: "icthp", Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	out, err := engine.Engine{Strict: true}.Render(ch, rv)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	var ms []Manifest
	for _, n := range names {
		if strings.HasPrefix(path.Base(n), "_") || path.Ext(n) == ".txt" {
			continue // partials and NOTES.txt render to no manifest
		}
		for _, doc := range SplitYAML(out[n]) {
			ms = append(ms, Manifest{Template: n, Body: doc})
		}
	}
	return ms, nil
}

// SplitYAML splits a multi-document YAML stream at "---" lines and drops
// documents that hold only comments and blank lines.
func SplitYAML(s string) []string {
	var docs []string
	var cur []string
	flush := func() {
		body := strings.Join(cur, "\n")
		cur = cur[:0]
		for _, l := range strings.Split(body, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, body+"\n")
				return
			}
		}
	}
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimRight(l, " \t") == "---" || strings.HasPrefix(l, "--- ") {
			flush()
			continue
		}
		cur = append(cur, l)
	}
	flush()
	return docs
}

// mergeMaps lays b over a as Helm merges -f files: nested maps merge, any
// other value in b replaces a's.
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}
