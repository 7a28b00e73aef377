package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Score is one named score of an image: a registry output name (ict, hp,
// hp_logit, imagereward, pickscore, pickscore_prob, clipscore, ...) and its
// value.
type Score struct {
	Name  string
	Value float64
}

// Scores are one image's results, or its error. On the wire each score is
// a member named by its output ({"ict": 0.31, "hp": 0.52, ...}) in the
// server's registry order (models, then each model's outputs), and "error"
// last; Values keeps that order both ways. A score that was not computed is
// absent.
type Scores struct {
	Values []Score
	Error  *ErrorBody
}

// Get returns the named score, nil when it was not computed.
func (s Scores) Get(name string) *float64 {
	for _, v := range s.Values {
		if v.Name == name {
			x := v.Value
			return &x
		}
	}
	return nil
}

// MarshalJSON writes the scores in order, then the error.
func (s Scores) MarshalJSON() ([]byte, error) {
	b, err := s.appendMembers([]byte{'{'})
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendMembers writes the scores and the error as object members, after a
// comma when b already holds a member.
func (s Scores) appendMembers(b []byte) ([]byte, error) {
	var err error
	for _, v := range s.Values {
		if b, err = appendMember(b, v.Name, v.Value); err != nil {
			return nil, err
		}
	}
	if s.Error != nil {
		return appendMember(b, "error", s.Error)
	}
	return b, nil
}

// UnmarshalJSON reads "error" and every numeric member, in order; members
// of another type (a future string field, null) are skipped.
func (s *Scores) UnmarshalJSON(data []byte) error {
	*s = Scores{}
	return eachMember(data, s.member)
}

// member reads one member of a Scores object.
func (s *Scores) member(key string, raw json.RawMessage) error {
	if key == "error" {
		if isNull(raw) {
			return nil
		}
		s.Error = new(ErrorBody)
		return json.Unmarshal(raw, s.Error)
	}
	if !isNumber(raw) {
		return nil
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return fmt.Errorf("score %q: %w", key, err)
	}
	s.Values = append(s.Values, Score{Name: key, Value: v})
	return nil
}

// Ranked is one image of a ranking: its index in the request, its scores,
// and ict × softmax(hp_logit) over the group (nil without both scores, or
// for a failed image). On the wire: "index", the scores, then "ict_hp".
type Ranked struct {
	Index int
	Scores
	ICTHP *float64
}

// MarshalJSON writes index, the scores (and error), then ict_hp.
func (r Ranked) MarshalJSON() ([]byte, error) {
	b, err := r.Scores.appendMembers(strconv.AppendInt([]byte(`{"index":`), int64(r.Index), 10))
	if err != nil {
		return nil, err
	}
	if r.ICTHP != nil {
		if b, err = appendMember(b, "ict_hp", *r.ICTHP); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads index and ict_hp, the rest as Scores does.
func (r *Ranked) UnmarshalJSON(data []byte) error {
	*r = Ranked{}
	return eachMember(data, func(key string, raw json.RawMessage) error {
		switch key {
		case "index":
			return json.Unmarshal(raw, &r.Index)
		case "ict_hp":
			return json.Unmarshal(raw, &r.ICTHP)
		}
		return r.Scores.member(key, raw)
	})
}

// Column is one score of every item of a reward request, nil where the
// item failed.
type Column struct {
	Name   string
	Values []*float64
}

// RewardResponse answers POST /v1/reward: one reward per item (nil where
// the item failed, with its entry in Errors), and a column per output of
// each model that ran ("ict", "hp", "hp_logit", "imagereward",
// "pickscore", ...), [] when the request had no items.
//
// On the wire every member is at the top level in alphabetical order
// (errors, the columns, models, rewards), as the server has always written
// it; Errors is absent when no item failed. The server fills Columns in
// registry order; a decoded answer has them in wire order. Column finds one
// by name.
type RewardResponse struct {
	Columns []Column
	Errors  []ItemError
	Models  map[string]string
	Rewards []*float64
}

// Column returns the named column, nil when its model did not run.
func (r *RewardResponse) Column(name string) []*float64 {
	for _, c := range r.Columns {
		if c.Name == name {
			return c.Values
		}
	}
	return nil
}

// rewardMembers are the members of a reward answer that are not columns.
var rewardMembers = map[string]bool{"errors": true, "models": true, "rewards": true}

// MarshalJSON writes the members sorted by name (through a map, which
// encoding/json sorts).
func (r RewardResponse) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(r.Columns)+3)
	for _, c := range r.Columns {
		if _, dup := m[c.Name]; dup || rewardMembers[c.Name] {
			return nil, fmt.Errorf("api: reward column %q twice or named like another member", c.Name)
		}
		v := c.Values
		if v == nil {
			v = []*float64{} // a column that is there is a list
		}
		m[c.Name] = v
	}
	m["models"], m["rewards"] = r.Models, r.Rewards
	if len(r.Errors) > 0 {
		m["errors"] = r.Errors
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads errors, models and rewards, and every other member
// that is a list as a column, in wire order; other members are skipped.
func (r *RewardResponse) UnmarshalJSON(data []byte) error {
	*r = RewardResponse{}
	return eachMember(data, func(key string, raw json.RawMessage) error {
		switch key {
		case "errors":
			return json.Unmarshal(raw, &r.Errors)
		case "models":
			return json.Unmarshal(raw, &r.Models)
		case "rewards":
			return json.Unmarshal(raw, &r.Rewards)
		}
		if len(raw) == 0 || raw[0] != '[' {
			return nil
		}
		c := Column{Name: key}
		if err := json.Unmarshal(raw, &c.Values); err != nil {
			return fmt.Errorf("column %q: %w", key, err)
		}
		r.Columns = append(r.Columns, c)
		return nil
	})
}

// appendMember writes "key":value after b, with a comma unless b ends an
// object's opening brace.
func appendMember(b []byte, key string, v any) ([]byte, error) {
	val, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	k, _ := json.Marshal(key) // a string always marshals
	if len(b) > 0 && b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return append(append(append(b, k...), ':'), val...), nil
}

// eachMember calls f with each member of the JSON object in data, in
// order. null is no object: f is not called.
func eachMember(data []byte, f func(key string, raw json.RawMessage) error) error {
	if isNull(data) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil {
		return err
	} else if t != json.Delim('{') {
		return fmt.Errorf("want a JSON object, got %v", t)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string) // an object's keys are strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		if err := f(key, raw); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing brace
	return err
}

func isNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }

func isNumber(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'))
}
