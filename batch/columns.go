package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// ModelVersion is one version column of a row: the model's name and the
// version that scored the image.
type ModelVersion struct {
	Model   string
	Version string
}

// Score returns the named score of the row, nil when it has none.
func (r *Row) Score(name string) *float64 { return scoring.Scores{Values: r.Scores}.Get(name) }

// Version returns the version of the named model that scored the row, nil
// when none did.
func (r *Row) Version(model string) *string {
	for _, v := range r.Versions {
		if v.Model == model {
			s := v.Version
			return &s
		}
	}
	return nil
}

// versionSuffix ends the name of a version column: "ict_version".
const versionSuffix = "_version"

// baseColumns are the score columns of the models batch knew before the
// registry (ict, hp, imagereward), by model. Every Parquet output keeps
// them, null when the model is not loaded, so that its schema is what it
// was; the other models' columns appear when they are loaded.
var baseColumns = []struct {
	model   string
	outputs []string
}{{"ict", []string{"ict"}}, {"hp", []string{"hp", "hp_logit"}}, {"imagereward", []string{"imagereward"}}}

// columns are the score and version columns of one run's output, and the
// Parquet schema built from them.
type columns struct {
	scores   []string // score names, in column order
	versions []string // model names, in column order
	skip     map[string]bool
	typ      reflect.Type // the Parquet row struct
	schema   *parquet.Schema
}

// newColumns makes the columns of a run with the loaded models' specs (in
// registry order): the base columns, then one score column per output of
// each other loaded model and one version column per model. Relative
// outputs (see scorer.Output) are left out.
func newColumns(specs []scorer.Spec) *columns {
	c := &columns{skip: map[string]bool{}}
	for _, b := range baseColumns {
		c.scores = append(c.scores, b.outputs...)
		c.versions = append(c.versions, b.model)
	}
	for _, sp := range specs {
		for _, o := range sp.Outputs {
			if o.Relative {
				c.skip[o.Name] = true
			} else if !slices.Contains(c.scores, o.Name) {
				c.scores = append(c.scores, o.Name)
			}
		}
		if !slices.Contains(c.versions, sp.Name) {
			c.versions = append(c.versions, sp.Name)
		}
	}
	c.build()
	return c
}

// build makes the row struct, field by field as the Row struct of
// earlier versions declared them (the same names, types and tags), so
// that the schema, and the file, are the same for the same columns.
func (c *columns) build() {
	str, ptrStr, ptrF64 := reflect.TypeFor[string](), reflect.TypeFor[*string](), reflect.TypeFor[*float64]()
	fields := []reflect.StructField{
		{Name: "Key", Type: str, Tag: `parquet:"key"`},
		{Name: "Source", Type: str, Tag: `parquet:"source"`},
		{Name: "Prompt", Type: ptrStr, Tag: `parquet:"prompt,optional"`},
	}
	for i, s := range c.scores {
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("S%d", i), Type: ptrF64,
			Tag: reflect.StructTag(fmt.Sprintf(`parquet:"%s,optional"`, s))})
	}
	fields = append(fields, reflect.StructField{Name: "Error", Type: ptrStr, Tag: `parquet:"error,optional"`})
	for i, m := range c.versions {
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("V%d", i), Type: ptrStr,
			Tag: reflect.StructTag(fmt.Sprintf(`parquet:"%s%s,optional,dict"`, m, versionSuffix))})
	}
	fields = append(fields, reflect.StructField{Name: "Embedding", Type: reflect.TypeFor[[]float32](), Tag: `parquet:"embedding,list"`})
	c.typ = reflect.StructOf(fields)
	// The schema's name was the struct's: Row.
	c.schema = parquet.NewSchema("Row", parquet.SchemaOf(reflect.New(c.typ).Interface()))
}

// columnsOf reads the columns of a Parquet file this package wrote.
func columnsOf(s *parquet.Schema) (*columns, error) {
	c := &columns{skip: map[string]bool{}}
	for _, f := range s.Fields() {
		name := f.Name()
		switch {
		case name == "key" || name == "source" || name == "prompt" || name == "error" || name == "embedding":
		case strings.HasSuffix(name, versionSuffix):
			c.versions = append(c.versions, strings.TrimSuffix(name, versionSuffix))
		case f.Leaf() && f.Type().Kind() == parquet.Double:
			c.scores = append(c.scores, name)
		default:
			return nil, fmt.Errorf("unknown column %q", name)
		}
	}
	c.build()
	return c, nil
}

// scoresOf are an image's scores as the row keeps them: without the
// relative outputs.
func (c *columns) scoresOf(sc scoring.Scores) []scoring.Score {
	out := make([]scoring.Score, 0, len(sc.Values))
	for _, v := range sc.Values {
		if !c.skip[v.Name] {
			out = append(out, v)
		}
	}
	return out
}

// value is the row as a pointer to the Parquet row struct.
func (c *columns) value(r *Row) any {
	p := reflect.New(c.typ)
	v := p.Elem()
	v.Field(0).SetString(r.Key)
	v.Field(1).SetString(r.Source)
	v.Field(2).Set(reflect.ValueOf(r.Prompt))
	k := 3
	for _, s := range c.scores {
		v.Field(k).Set(reflect.ValueOf(r.Score(s)))
		k++
	}
	v.Field(k).Set(reflect.ValueOf(r.Error))
	k++
	for _, m := range c.versions {
		v.Field(k).Set(reflect.ValueOf(r.Version(m)))
		k++
	}
	v.Field(k).Set(reflect.ValueOf(r.Embedding))
	return p.Interface()
}

// row is the Parquet row struct (a pointer to one) as a Row.
func (c *columns) row(p any) Row {
	v := reflect.ValueOf(p).Elem()
	r := Row{Key: v.Field(0).String(), Source: v.Field(1).String(), Prompt: v.Field(2).Interface().(*string)}
	k := 3
	for _, s := range c.scores {
		if f := v.Field(k).Interface().(*float64); f != nil {
			r.Scores = append(r.Scores, scoring.Score{Name: s, Value: *f})
		}
		k++
	}
	r.Error = v.Field(k).Interface().(*string)
	k++
	for _, m := range c.versions {
		if s := v.Field(k).Interface().(*string); s != nil {
			r.Versions = append(r.Versions, ModelVersion{Model: m, Version: *s})
		}
		k++
	}
	if e := v.Field(k).Interface().([]float32); len(e) > 0 {
		r.Embedding = slices.Clone(e)
	}
	return r
}

// MarshalJSON writes the row's members in column order: key, source,
// prompt, the scores, error, the versions; absent ones are left out. The
// bytes are those the fixed Row struct of earlier versions gave.
func (r Row) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	member := func(name string, v any) error {
		if b.Len() == 0 {
			b.WriteByte('{')
		} else {
			b.Truncate(b.Len() - 1) // the encoder's newline
			b.WriteByte(',')
		}
		if err := enc.Encode(name); err != nil {
			return err
		}
		b.Truncate(b.Len() - 1)
		b.WriteByte(':')
		return enc.Encode(v)
	}
	err := errors.Join(member("key", r.Key), member("source", r.Source))
	if r.Prompt != nil {
		err = errors.Join(err, member("prompt", *r.Prompt))
	}
	for _, s := range r.Scores {
		err = errors.Join(err, member(s.Name, s.Value))
	}
	if r.Error != nil {
		err = errors.Join(err, member("error", *r.Error))
	}
	for _, v := range r.Versions {
		err = errors.Join(err, member(v.Model+versionSuffix, v.Version))
	}
	if err != nil {
		return nil, err
	}
	b.Truncate(b.Len() - 1)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a row MarshalJSON wrote, keeping the members'
// order: numbers are scores, NAME_version strings versions.
func (r *Row) UnmarshalJSON(data []byte) error {
	*r = Row{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("a row is a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		var str *string
		switch {
		case name == "key":
			err = dec.Decode(&r.Key)
		case name == "source":
			err = dec.Decode(&r.Source)
		case name == "prompt":
			err = dec.Decode(&r.Prompt)
		case name == "error":
			err = dec.Decode(&r.Error)
		case strings.HasSuffix(name, versionSuffix):
			if err = dec.Decode(&str); err == nil && str != nil {
				r.Versions = append(r.Versions, ModelVersion{Model: strings.TrimSuffix(name, versionSuffix), Version: *str})
			}
		default:
			var f *float64
			if err = dec.Decode(&f); err == nil && f != nil {
				r.Scores = append(r.Scores, scoring.Score{Name: name, Value: *f})
			}
		}
		if err != nil {
			return fmt.Errorf("member %q: %w", name, err)
		}
	}
	_, err := dec.Token()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}
