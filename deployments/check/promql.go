package check

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// Series is what a scrape says about one metric name: the label names its
// samples carry (Prometheus adds job and instance on top).
type Series struct {
	Family string // the family it belongs to (a histogram's _bucket belongs to the histogram)
	Labels map[string]bool
}

// Exported parses a Prometheus text exposition and returns every metric name
// a query can select, with the labels seen on it: counters and gauges by
// their name, histograms as NAME_bucket (with le), NAME_sum and NAME_count,
// summaries as NAME (with quantile), NAME_sum and NAME_count.
func Exported(r io.Reader) (map[string]Series, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	out := map[string]Series{}
	add := func(fam, name string, labels map[string]bool, extra ...string) {
		s, ok := out[name]
		if !ok {
			s = Series{Family: fam, Labels: map[string]bool{}}
			out[name] = s
		}
		for l := range labels {
			s.Labels[l] = true
		}
		for _, l := range extra {
			s.Labels[l] = true
		}
	}
	for name, f := range fams {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			add(name, name+"_bucket", labels, "le")
			add(name, name+"_sum", labels)
			add(name, name+"_count", labels)
		case dto.MetricType_SUMMARY:
			add(name, name, labels, "quantile")
			add(name, name+"_sum", labels)
			add(name, name+"_count", labels)
		default:
			add(name, name, labels)
		}
	}
	return out, nil
}

// Selector is one metric a query reads, with the labels its matchers name.
type Selector struct {
	Metric string
	Labels []string
}

// grafanaVars are Grafana's variables as they may appear in a query, replaced
// by something PromQL parses before a query is checked.
var grafanaVars = regexp.MustCompile(`\$\{?(__rate_interval|__interval|__range)\}?|\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?`)

// ExpandGrafana replaces Grafana's variables: intervals by 5m, the others by
// a plain word (they stand inside label matchers' strings).
func ExpandGrafana(q string) string {
	return grafanaVars.ReplaceAllStringFunc(q, func(v string) string {
		if strings.Contains(v, "__rate_interval") || strings.Contains(v, "__interval") || strings.Contains(v, "__range") {
			return "5m"
		}
		return "x"
	})
}

var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// Selectors parses a PromQL expression, or a Grafana label_values(SELECTOR,
// LABEL) variable query, and returns the metrics it reads. A selector
// without a metric name is an error: the check could not tell what it reads.
func Selectors(q string) ([]Selector, error) {
	extraLabel := ""
	if m := labelValues.FindStringSubmatch(q); m != nil {
		q, extraLabel = m[1], m[2]
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", q, err)
	}
	var out []Selector
	var bad error
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s := Selector{Metric: vs.Name}
		// Labels an enclosing `sum by (...)` groups on must be on the
		// series too (a misspelt grouping label yields one empty group).
		for _, a := range path {
			if ag, ok := a.(*parser.AggregateExpr); ok && !ag.Without {
				s.Labels = append(s.Labels, ag.Grouping...)
			}
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				if m.Type == 0 && s.Metric == "" {
					s.Metric = m.Value
				}
				continue
			}
			s.Labels = append(s.Labels, m.Name)
		}
		if s.Metric == "" {
			bad = fmt.Errorf("%q: a selector without a metric name (%s)", q, vs)
		}
		if extraLabel != "" {
			s.Labels = append(s.Labels, extraLabel)
		}
		sort.Strings(s.Labels)
		s.Labels = slices.Compact(s.Labels)
		out = append(out, s)
		return nil
	})
	return out, bad
}

// DashboardQueries returns every query in a Grafana dashboard: the exprs of
// all panels' targets (rows' nested panels included) and the variables'
// queries, each with where it is.
func DashboardQueries(b []byte) (map[string]string, error) {
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	out := map[string]string{}
	var walk func(ps []json.RawMessage) error
	walk = func(ps []json.RawMessage) error {
		for _, raw := range ps {
			var p struct {
				ID      int               `json:"id"`
				Title   string            `json:"title"`
				Type    string            `json:"type"`
				Panels  []json.RawMessage `json:"panels"`
				Targets []struct {
					RefID string `json:"refId"`
					Expr  string `json:"expr"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				return fmt.Errorf("dashboard panel: %w", err)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				return fmt.Errorf("dashboard panel %d %q has no query", p.ID, p.Title)
			}
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					return fmt.Errorf("dashboard panel %d %q target %s has no expr", p.ID, p.Title, t.RefID)
				}
				out[fmt.Sprintf("panel %d %q %s", p.ID, p.Title, t.RefID)] = t.Expr
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				return nil, fmt.Errorf("dashboard variable %s: %w", v.Name, err)
			}
		}
		out["variable "+v.Name] = q.Query
	}
	return out, nil
}
