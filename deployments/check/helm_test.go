package check

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const release = "icthp"

func chartDir() string { return repoPath("deployments", "helm", "icthp") }

// renderCase is one `helm template` invocation.
type renderCase struct {
	name      string
	files     []string // value files in the chart folder, after values.yaml
	overrides map[string]any
	gpu       bool
}

var renderCases = []renderCase{
	{name: "default"},
	{name: "gpu", files: []string{"values-gpu.yaml"}, gpu: true},
	{name: "gpu, monitoring, external redis, tokens, created volume", files: []string{"values-gpu.yaml"}, gpu: true,
		overrides: map[string]any{
			"metrics": map[string]any{
				"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}},
				"prometheusRule": map[string]any{"enabled": true},
				"dashboard":      map[string]any{"enabled": true},
			},
			"redis":  map[string]any{"url": "redis://:secret@redis-cluster:6379?cluster=true"},
			"auth":   map[string]any{"tokens": []any{"t0k3n-a", "t0k3n-b"}},
			"models": map[string]any{"volume": map[string]any{"create": true}, "convert": map[string]any{"demo": false, "hfClaim": "hf-cache"}},
			"config": map[string]any{"ICTHP_IMAGEREWARD": "/models/imagereward"},
		}},
	{name: "fixed replicas, existing secrets and claim, no convert", overrides: map[string]any{
		"autoscaling":         map[string]any{"enabled": false, "cpuUtilization": 70},
		"podDisruptionBudget": map[string]any{"enabled": false},
		"redis":               map[string]any{"existingSecret": "my-redis"},
		"auth":                map[string]any{"existingSecret": "my-tokens"},
		"models":              map[string]any{"volume": map[string]any{"existingClaim": "icthp-models"}, "convert": map[string]any{"enabled": false}},
		"server":              map[string]any{"extraArgs": []any{"--max-image-bytes", "1048576"}},
	}},
}

func render(t *testing.T, rc renderCase) []*Object {
	t.Helper()
	var files []string
	for _, f := range rc.files {
		files = append(files, repoPath("deployments", "helm", "icthp", f))
	}
	ms, err := RenderChart(chartDir(), release, files, rc.overrides)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*Object
	seen := map[string]string{}
	for _, m := range ms {
		o, err := Decode([]byte(m.Body))
		if err != nil {
			t.Errorf("%s: %v\n%s", m.Template, err, m.Body)
			continue
		}
		key := o.Kind + "/" + o.Meta.Name
		if prev, dup := seen[key]; dup {
			t.Errorf("%s rendered by both %s and %s", key, prev, m.Template)
		}
		seen[key] = m.Template
		objs = append(objs, o)
	}
	if t.Failed() {
		t.FailNow()
	}
	return objs
}

func find[T any](objs []*Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Value.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func byName[T any](t *testing.T, objs []*Object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Meta.Name == name {
			return o.Value.(T)
		}
	}
	var zero T
	t.Fatalf("no %s %q rendered", kind, name)
	return zero
}

func has(objs []*Object, kind, name string) bool {
	return slices.ContainsFunc(objs, func(o *Object) bool { return o.Kind == kind && o.Meta.Name == name })
}

// chart is one rendered case with the parts most checks read: the icthp
// Deployment, its first container and the release's ConfigMap.
type chart struct {
	rc   renderCase
	objs []*Object
	pods []corev1.PodTemplateSpec
	d    *appsv1.Deployment
	c    corev1.Container
	cm   *corev1.ConfigMap
}

func loadChart(t *testing.T, rc renderCase) chart {
	t.Helper()
	ch := chart{rc: rc, objs: render(t, rc)}
	for _, o := range ch.objs {
		if pt := o.PodTemplate(); pt != nil {
			ch.pods = append(ch.pods, *pt)
		}
	}
	ch.d = byName[*appsv1.Deployment](t, ch.objs, "Deployment", release)
	ch.c = ch.d.Spec.Template.Spec.Containers[0]
	if ch.c.Name != "icthp" {
		t.Fatalf("first container is %q, want icthp", ch.c.Name)
	}
	ch.cm = byName[*corev1.ConfigMap](t, ch.objs, "ConfigMap", release)
	return ch
}

// chartChecks run on every render case, each as a subtest.
var chartChecks = []struct {
	name  string
	check func(*testing.T, chart)
}{
	{"deployments select their pods, not as root", checkDeployments},
	{"services select one workload's ports", checkServices},
	{"probes and drain", checkProbesAndDrain},
	{"args", checkArgs},
	{"env read by icthp", checkEnvKnown},
	{"secrets and claims exist", checkReferences},
	{"redis", checkRedisEnv},
	{"gpu or cpu", checkGPU},
	{"autoscaling and disruption budget", checkScaling},
	{"monitoring", checkMonitoring},
}

func TestChartRenders(t *testing.T) {
	for _, rc := range renderCases {
		t.Run(rc.name, func(t *testing.T) {
			ch := loadChart(t, rc)
			for _, cc := range chartChecks {
				t.Run(cc.name, func(t *testing.T) { cc.check(t, ch) })
			}
		})
	}
}

func checkDeployments(t *testing.T, ch chart) {
	for _, d := range find[*appsv1.Deployment](ch.objs) {
		sel, err := metaSelector(d.Spec.Selector.MatchLabels)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: selector %v does not select its own pods %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
		sc := d.Spec.Template.Spec.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("Deployment %s: pods may run as root", d.Name)
		}
	}
}

// checkServices: each Service selects the pods of exactly one workload, and
// its target ports are named ports of those pods.
func checkServices(t *testing.T, ch chart) {
	for _, s := range find[*corev1.Service](ch.objs) {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var matched []corev1.PodTemplateSpec
		for _, p := range ch.pods {
			if sel.Matches(labels.Set(p.Labels)) {
				matched = append(matched, p)
			}
		}
		if len(matched) != 1 {
			t.Errorf("Service %s selects the pods of %d workloads, want 1", s.Name, len(matched))
			continue
		}
		for _, sp := range s.Spec.Ports {
			if !podHasPort(matched[0].Spec, sp.TargetPort.String()) {
				t.Errorf("Service %s: target port %s is no container port", s.Name, sp.TargetPort.String())
			}
		}
	}
}

// checkProbesAndDrain: the probes ask icthp's health paths, and the pod's
// grace period covers the preStop sleep and icthp's whole drain as its
// flags set it (the server's defaults otherwise).
func checkProbesAndDrain(t *testing.T, ch chart) {
	c := ch.c
	probe := func(p *corev1.Probe, path, what string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET %s on port http", what, p, path)
		}
	}
	probe(c.ReadinessProbe, "/readyz", "readiness")
	probe(c.LivenessProbe, "/healthz", "liveness")
	probe(c.StartupProbe, "/healthz", "startup")
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("no preStop sleep: a draining pod would still get requests")
	}
	drain := map[string]time.Duration{"--drain-delay": 2 * time.Second, "--grace": 30 * time.Second}
	for i, a := range c.Args[:len(c.Args)-1] {
		if _, ok := drain[a]; ok {
			d, err := time.ParseDuration(c.Args[i+1])
			if err != nil {
				t.Fatalf("%s %q: %v", a, c.Args[i+1], err)
			}
			drain[a] = d
		}
	}
	grace := time.Duration(*ch.d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	sleep := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if need := sleep + drain["--drain-delay"] + drain["--grace"]; grace <= need {
		t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + drain delay %v + grace %v: the kubelet would kill requests in flight",
			grace, sleep, drain["--drain-delay"], drain["--grace"])
	}
}

func checkArgs(t *testing.T, ch chart) {
	checkFlags(t, "icthp container args", ch.c.Args)
	if !slices.Contains(ch.c.Args, "serve") || ch.c.Args[0] != "serve" {
		t.Errorf("args %q do not run icthp serve", ch.c.Args)
	}
	for _, ic := range ch.d.Spec.Template.Spec.InitContainers {
		if ic.Name == "convert-models" && (len(ic.Command) != 1 || ic.Command[0] != "/usr/local/bin/convert-models.sh") {
			t.Errorf("convert-models runs %q", ic.Command)
		}
	}
}

var envVars = regexp.MustCompile(`\$(ICTHP_[A-Z0-9_]+)`)

// checkEnvKnown: every variable icthp gets is one that icthp (or the image)
// reads.
func checkEnvKnown(t *testing.T, ch chart) {
	known := map[string]bool{"ICTHP_CACHE": true, "ICTHP_PROBE_URL": true}
	for _, m := range envVars.FindAllStringSubmatch(help(t, "serve"), -1) {
		known[m[1]] = true
	}
	for _, a := range ch.c.Args {
		if strings.HasPrefix(a, "$(") && strings.HasSuffix(a, ")") {
			known[a[2:len(a)-1]] = true // expanded by Kubernetes into the args
		}
	}
	for k := range ch.cm.Data {
		if !known[k] {
			t.Errorf("ConfigMap sets %s, which icthp serve does not read (icthp serve -h names %v)", k, keys(known))
		}
	}
	for _, e := range ch.c.Env {
		if !known[e.Name] {
			t.Errorf("container env %s is read by nobody", e.Name)
		}
	}
}

// checkReferences: the Secrets, ConfigMaps and claims the pod reads are
// rendered, or given by the case's values.
func checkReferences(t *testing.T, ch chart) {
	objs := ch.objs
	for _, e := range ch.c.Env {
		if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
			if n := r.SecretKeyRef.Name; !has(objs, "Secret", n) && n != "my-redis" && n != "my-tokens" {
				t.Errorf("env %s reads Secret %s, which is neither rendered nor given", e.Name, n)
			}
		}
	}
	for _, ef := range ch.c.EnvFrom {
		if ef.ConfigMapRef != nil && !has(objs, "ConfigMap", ef.ConfigMapRef.Name) {
			t.Errorf("envFrom ConfigMap %s not rendered", ef.ConfigMapRef.Name)
		}
	}
	for _, v := range ch.d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && !has(objs, "Secret", v.Secret.SecretName) && v.Secret.SecretName != "my-tokens" {
			t.Errorf("volume %s mounts Secret %s, which is neither rendered nor given", v.Name, v.Secret.SecretName)
		}
		if v.PersistentVolumeClaim != nil {
			n := v.PersistentVolumeClaim.ClaimName
			if !has(objs, "PersistentVolumeClaim", n) && n != "icthp-models" && n != "hf-cache" {
				t.Errorf("volume %s claims %s, which is neither rendered nor given", v.Name, n)
			}
		}
	}
}

// checkRedisEnv: every case here has a Redis; the release's own is reached
// through its Service.
func checkRedisEnv(t *testing.T, ch chart) {
	var redisEnv *corev1.EnvVar
	for i := range ch.c.Env {
		if ch.c.Env[i].Name == "ICTHP_REDIS" {
			redisEnv = &ch.c.Env[i]
		}
	}
	switch {
	case redisEnv == nil:
		t.Error("icthp gets no ICTHP_REDIS")
	case redisEnv.Value != "":
		u, err := url.Parse(redisEnv.Value)
		if err != nil {
			t.Fatalf("ICTHP_REDIS %q: %v", redisEnv.Value, err)
		}
		svc := byName[*corev1.Service](t, ch.objs, "Service", u.Hostname())
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return fmt.Sprint(p.Port) == u.Port() }) {
			t.Errorf("ICTHP_REDIS %s: Service %s has no port %s", redisEnv.Value, svc.Name, u.Port())
		}
	}
}

func checkGPU(t *testing.T, ch chart) {
	c := ch.c
	gpus := c.Resources.Limits[corev1.ResourceName("nvidia.com/gpu")]
	provider := ch.cm.Data["ICTHP_PROVIDER"]
	if ch.rc.gpu {
		if gpus.Cmp(resource.MustParse("1")) != 0 {
			t.Errorf("GPU values: nvidia.com/gpu limit %v, want 1", gpus.String())
		}
		if provider != "cuda" || !strings.HasSuffix(c.Image, ":cuda") {
			t.Errorf("GPU values: provider %q image %q, want cuda and the :cuda image", provider, c.Image)
		}
	} else if !gpus.IsZero() || provider != "cpu" || !strings.HasSuffix(c.Image, ":cpu") {
		t.Errorf("CPU values: nvidia.com/gpu %v, provider %q, image %q", gpus.String(), provider, c.Image)
	}
}

func checkScaling(t *testing.T, ch chart) {
	d := ch.d
	for _, h := range find[*autoscalingv2.HorizontalPodAutoscaler](ch.objs) {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name {
			t.Errorf("HPA scales %+v, not Deployment %s", h.Spec.ScaleTargetRef, d.Name)
		}
		if d.Spec.Replicas != nil {
			t.Error("Deployment sets replicas while an HPA owns them (every upgrade would reset the count)")
		}
	}
	for _, p := range find[*policyv1.PodDisruptionBudget](ch.objs) {
		sel, err := metaSelector(p.Spec.Selector.MatchLabels)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("PDB %s does not cover the icthp pods", p.Name)
		}
	}
}

func checkMonitoring(t *testing.T, ch chart) {
	for _, sm := range find[*monitoringv1.ServiceMonitor](ch.objs) {
		svc := byName[*corev1.Service](t, ch.objs, "Service", release)
		sel, err := metaSelector(sm.Spec.Selector.MatchLabels)
		if err != nil || !sel.Matches(labels.Set(svc.Labels)) {
			t.Errorf("ServiceMonitor selects %v, the Service is labelled %v", sm.Spec.Selector.MatchLabels, svc.Labels)
		}
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) || ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoint %s %s: no such Service port, or not /metrics", ep.Port, ep.Path)
			}
		}
	}
	for _, pr := range find[*monitoringv1.PrometheusRule](ch.objs) {
		var want monitoringv1.PrometheusRuleSpec
		b, err := os.ReadFile(repoPath("deployments", "prometheus", "alerts.yml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, &want); err != nil {
			t.Fatalf("alerts.yml as a PrometheusRule spec: %v", err)
		}
		if !reflect.DeepEqual(pr.Spec, want) {
			t.Error("PrometheusRule differs from deployments/prometheus/alerts.yml")
		}
	}
}

// TestChartRefusesBadValues: values that cannot work fail the render with a
// message that names the value.
func TestChartRefusesBadValues(t *testing.T) {
	tests := []struct {
		name      string
		overrides map[string]any
		want      string
	}{
		{"no models source", map[string]any{"models": map[string]any{"convert": map[string]any{"enabled": false}}}, "models.volume.existingClaim"},
		{"GPU with the cpu provider", map[string]any{"gpu": map[string]any{"enabled": true, "provider": "cpu"}}, "gpu.provider"},
		{"no model at all", map[string]any{"models": map[string]any{"ict": "", "hp": ""}}, "models.ict"},
		// values.schema.json: misspelt or malformed values fail too.
		{"misspelt value", map[string]any{"gpu": map[string]any{"enable": true}}, "enable"},
		{"Redis address without a scheme", map[string]any{"redis": map[string]any{"url": "redis-master:6379"}}, "url"},
		{"CPU target above 100%", map[string]any{"autoscaling": map[string]any{"cpuUtilization": 150}}, "cpuUtilization"},
		{"setting that is no icthp variable", map[string]any{"config": map[string]any{"QUEUE_SIZE": "8"}}, "QUEUE_SIZE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RenderChart(chartDir(), release, nil, tc.overrides)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// TestChartFilesAreCopies: the chart ships the dashboard and the alert rules
// (Helm reads files only inside the chart), as copies that must not drift.
func TestChartFilesAreCopies(t *testing.T) {
	for copy, orig := range map[string]string{
		"files/alerts.yml": "deployments/prometheus/alerts.yml",
		"files/icthp.json": "deployments/grafana/dashboards/icthp.json",
	} {
		a, err1 := os.ReadFile(repoPath("deployments", "helm", "icthp", copy))
		b, err2 := os.ReadFile(repoPath(orig))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Errorf("deployments/helm/icthp/%s differs from %s: cp %s deployments/helm/icthp/%s", copy, orig, orig, copy)
		}
	}
}

func podHasPort(ps corev1.PodSpec, port string) bool {
	for _, c := range ps.Containers {
		for _, p := range c.Ports {
			if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
				return true
			}
		}
	}
	return false
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, errors.New("empty selector")
	}
	return labels.SelectorFromSet(m), nil
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
