package check

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

func composeFile() string { return repoPath("deployments", "docker-compose.yml") }

// composeChecks run on the loaded compose project, each as a subtest.
var composeChecks = []struct {
	name  string
	check func(*testing.T, *types.Project)
}{
	{"icthp service", checkComposeIcthp},
	{"models step", checkComposeModels},
	{"builds and bind mounts exist", checkComposeSources},
	{"prometheus", checkComposePrometheus},
	{"grafana", checkComposeGrafana},
}

func TestCompose(t *testing.T) {
	p, err := LoadCompose(context.Background(), composeFile(), map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"icthp", "models", "redis", "prometheus", "grafana"} {
		if _, err := p.GetService(want); err != nil {
			t.Errorf("no service %s", want)
		}
	}
	for _, cc := range composeChecks {
		t.Run(cc.name, func(t *testing.T) { cc.check(t, p) })
	}
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkComposeIcthp(t *testing.T, p *types.Project) {
	icthpSvc := service(t, p, "icthp")
	// The image's ENTRYPOINT is icthp; compose's command is its arguments.
	checkFlags(t, "compose icthp command", icthpSvc.Command)
	if !slices.Contains(icthpSvc.Command, "--redis") {
		t.Error("compose icthp does not use the compose Redis")
	}
	if d := icthpSvc.DependsOn["models"]; d.Condition != "service_completed_successfully" {
		t.Errorf("icthp starts before the models step has finished (depends_on models: %+v)", d)
	}
	if icthpSvc.HealthCheck == nil || !slices.Contains(icthpSvc.HealthCheck.Test, "http://127.0.0.1:8080/readyz") {
		t.Errorf("icthp health check %+v does not ask /readyz", icthpSvc.HealthCheck)
	}
	if icthpSvc.StopGracePeriod == nil || *icthpSvc.StopGracePeriod < 32e9 {
		t.Errorf("stop_grace_period %v is shorter than icthp's drain (2 s delay + 30 s grace)", icthpSvc.StopGracePeriod)
	}
}

// checkComposeModels: icthp reads the model directories where the models
// step writes them, on the same volume.
func checkComposeModels(t *testing.T, p *types.Project) {
	icthpSvc, models := service(t, p, "icthp"), service(t, p, "models")
	out := models.Environment["ICTHP_MODELS_DIR"]
	if out == nil {
		t.Fatal("the models step sets no ICTHP_MODELS_DIR")
	}
	for _, k := range []string{"ICTHP_ICT", "ICTHP_HP"} {
		v := icthpSvc.Environment[k]
		if v == nil || filepath.Dir(*v) != *out {
			t.Errorf("icthp %s=%v is not under the models step's ICTHP_MODELS_DIR=%v", k, deref(v), deref(out))
		}
	}
	volOf := func(vols []types.ServiceVolumeConfig, target string) string {
		for _, v := range vols {
			if v.Target == target {
				return v.Source
			}
		}
		return ""
	}
	if a, b := volOf(models.Volumes, *out), volOf(icthpSvc.Volumes, *out); a == "" || a != b {
		t.Errorf("models writes volume %q at %s, icthp mounts %q there", a, *out, b)
	}
	if len(models.Entrypoint) != 1 || models.Entrypoint[0] != "/usr/local/bin/convert-models.sh" {
		t.Errorf("models entrypoint %q, want the image's convert-models.sh", models.Entrypoint)
	}
}

func checkComposeSources(t *testing.T, p *types.Project) {
	for _, s := range p.Services {
		if s.Build != nil {
			df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("service %s builds %s: %v", s.Name, df, err)
			}
		}
		for _, v := range s.Volumes {
			if v.Type != "bind" {
				continue
			}
			if v.Target == "/hf" {
				continue // the user's checkpoints; docker makes an empty folder when absent
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s: %v", s.Name, v.Source, err)
			}
		}
	}
}

// mounts maps a service's mount targets to their sources.
func mounts(s types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		m[v.Target] = v.Source
	}
	return m
}

// checkComposePrometheus: Prometheus scrapes icthp where compose runs it,
// and loads the rules at the path compose mounts them.
func checkComposePrometheus(t *testing.T, p *types.Project) {
	var prom struct {
		Global        map[string]string `json:"global"`
		RuleFiles     []string          `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	strictFile(t, repoPath("deployments", "prometheus", "prometheus.yml"), &prom)
	mounted := mounts(service(t, p, "prometheus"))
	for _, rf := range prom.RuleFiles {
		if src, ok := mounted[rf]; !ok || filepath.Base(src) != "alerts.yml" {
			t.Errorf("rule file %s is not the mounted alerts.yml (mounts %v)", rf, mounted)
		}
	}
	scraped := false
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, "icthp:8080") && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
				scraped = true
			}
		}
	}
	if !scraped {
		t.Error("prometheus.yml does not scrape icthp:8080/metrics")
	}
}

// checkComposeGrafana: the provisioned data source is Prometheus at its
// compose address, and the dashboards provider reads the folder compose
// mounts.
func checkComposeGrafana(t *testing.T, p *types.Project) {
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string `json:"name"`
			UID       string `json:"uid"`
			Type      string `json:"type"`
			Access    string `json:"access"`
			URL       string `json:"url"`
			IsDefault bool   `json:"isDefault"`
		} `json:"datasources"`
	}
	strictFile(t, repoPath("deployments", "grafana", "provisioning", "datasources", "prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("Grafana data source %+v, want prometheus at http://prometheus:9090", ds.Datasources)
	}
	var dp struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name            string `json:"name"`
			Folder          string `json:"folder"`
			Type            string `json:"type"`
			DisableDeletion bool   `json:"disableDeletion"`
			Options         struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	strictFile(t, repoPath("deployments", "grafana", "provisioning", "dashboards", "icthp.yml"), &dp)
	gm := mounts(service(t, p, "grafana"))
	if len(dp.Providers) != 1 || gm[dp.Providers[0].Options.Path] != repoPath("deployments", "grafana", "dashboards") {
		t.Errorf("Grafana reads dashboards from %+v; compose mounts %v", dp.Providers, gm)
	}
	if gm["/etc/grafana/provisioning"] != repoPath("deployments", "grafana", "provisioning") {
		t.Errorf("Grafana provisioning not mounted (mounts %v)", gm)
	}
}

// TestComposeStrict: the loader refuses what the specification does not
// have, so TestCompose's load means something.
func TestComposeStrict(t *testing.T) {
	b, err := os.ReadFile(composeFile())
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"misspelt service key": {"    stop_grace_period: 40s", "    stop_grace_periods: 40s"},
		"unknown top-level":    {"volumes:\n  models:", "volume:\n  models:"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(string(b), edit[0]) {
				t.Fatalf("compose file has no %q to change", edit[0])
			}
			dir := t.TempDir()
			f := filepath.Join(dir, "docker-compose.yml")
			if err := os.WriteFile(f, []byte(strings.Replace(string(b), edit[0], edit[1], 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadCompose(context.Background(), f, map[string]string{}); err == nil {
				t.Error("loaded without an error")
			}
		})
	}
}

func strictFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

func deref(p *string) string {
	if p == nil {
		return "<unset>"
	}
	return *p
}
