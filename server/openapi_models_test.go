package server_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/server"
)

// jsonNames are the JSON member names of a struct type's fields.
func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "-" && name != "" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIDescribesTheRegistry: openapi.json names every model of the
// registry, every score the models give (in /v1/score's Scores and
// /v1/reward's columns), and /v1/models' Model has exactly ModelInfo's
// members.
func TestOpenAPIDescribesTheRegistry(t *testing.T) {
	type schema struct {
		Enum       []string          `json:"enum"`
		Properties map[string]schema `json:"properties"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(server.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	sc := doc.Components.Schemas
	var names, outputs []string
	for _, e := range modelset.Registry() {
		names = append(names, e.Name)
		for _, o := range e.Outputs {
			outputs = append(outputs, o.Name)
		}
	}
	if !slices.Equal(sc["ModelName"].Enum, names) {
		t.Errorf("ModelName enum %v, registry %v", sc["ModelName"].Enum, names)
	}
	for _, where := range []string{"Scores", "RewardResponse"} {
		for _, o := range outputs {
			if _, ok := sc[where].Properties[o]; !ok {
				t.Errorf("%s does not document the %s score", where, o)
			}
		}
	}
	keys := func(m map[string]schema) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	model := sc["Model"]
	if got, want := keys(model.Properties), jsonNames(reflect.TypeFor[api.ModelInfo]()); !slices.Equal(got, want) {
		t.Errorf("Model properties %v, api.ModelInfo members %v", got, want)
	}
	if got, want := keys(model.Properties["formula"].Properties), jsonNames(reflect.TypeFor[api.ModelFormula]()); !slices.Equal(got, want) {
		t.Errorf("Model.formula properties %v, api.ModelFormula members %v", got, want)
	}
}
