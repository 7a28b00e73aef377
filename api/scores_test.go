package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func f(v float64) *float64 { return &v }

// TestScoresWire: scores are written in their order (not sorted), the
// error last, and read back in wire order with every numeric member.
func TestScoresWire(t *testing.T) {
	cases := []struct {
		name string
		in   Scores
		wire string
	}{
		{"registry order", Scores{Values: []Score{{"ict", 0.25}, {"hp", 0.5}, {"hp_logit", -1e-7}, {"imagereward", 1.5}, {"pickscore", 21}, {"aesthetic", 5.125}}},
			`{"ict":0.25,"hp":0.5,"hp_logit":-1e-7,"imagereward":1.5,"pickscore":21,"aesthetic":5.125}`},
		{"error", Scores{Error: &ErrorBody{Code: CodeUndecodable, Message: "bad <png>"}},
			`{"error":{"code":"undecodable_image","message":"bad \u003cpng\u003e"}}`},
		{"empty", Scores{}, `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.in)
			if err != nil || string(b) != tc.wire {
				t.Fatalf("marshal: %s (%v), want %s", b, err, tc.wire)
			}
			var back Scores
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.in) {
				t.Errorf("round trip: %+v, want %+v", back, tc.in)
			}
		})
	}
	var s Scores
	if err := json.Unmarshal([]byte(`{"hp":0.5,"note":"x","n":null,"ict":-2,"list":[1]}`), &s); err != nil {
		t.Fatal(err)
	}
	if want := []Score{{"hp", 0.5}, {"ict", -2}}; !reflect.DeepEqual(s.Values, want) {
		t.Errorf("numeric members %+v, want %+v", s.Values, want)
	}
	if g := s.Get("ict"); g == nil || *g != -2 {
		t.Errorf("Get(ict) = %v", g)
	}
	if s.Get("imagereward") != nil {
		t.Error("Get of a missing score is not nil")
	}
	if err := json.Unmarshal([]byte(`[1]`), &s); err == nil {
		t.Error("an array decoded as Scores")
	}
}

// TestRankedWire: index first, the scores in order, ict_hp last; index and
// ict_hp are not scores when read back.
func TestRankedWire(t *testing.T) {
	cases := []struct {
		in   Ranked
		wire string
	}{
		{Ranked{Index: 2, Scores: Scores{Values: []Score{{"ict", 0.5}, {"hp_logit", 3}}}, ICTHP: f(0.125)}, `{"index":2,"ict":0.5,"hp_logit":3,"ict_hp":0.125}`},
		{Ranked{Index: 0, Scores: Scores{Values: []Score{{"hp", 0.5}}}}, `{"index":0,"hp":0.5}`},
		{Ranked{Index: 1, Scores: Scores{Error: &ErrorBody{Code: "x", Message: "y"}}}, `{"index":1,"error":{"code":"x","message":"y"}}`},
	}
	for _, tc := range cases {
		b, err := json.Marshal(tc.in)
		if err != nil || string(b) != tc.wire {
			t.Errorf("marshal: %s (%v), want %s", b, err, tc.wire)
			continue
		}
		var back Ranked
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, tc.in) {
			t.Errorf("round trip: %+v, want %+v", back, tc.in)
		}
	}
}

// TestRewardWire: a reward answer is the map the server used to write
// (encoding/json sorts a map's keys): the same bytes as that map.
func TestRewardWire(t *testing.T) {
	in := RewardResponse{
		Columns: []Column{{"ict", []*float64{f(0.5), nil}}, {"hp", []*float64{f(0.25), nil}}, {"hp_logit", []*float64{f(-1), nil}}, {"aesthetic", []*float64{f(4), nil}}},
		Errors:  []ItemError{{Index: 1, ErrorBody: ErrorBody{Code: CodeBadBase64, Message: "m"}}},
		Models:  map[string]string{"ict": "v1", "hp": "v2", "aesthetic": "v3"},
		Rewards: []*float64{f(0.125), nil},
	}
	old := map[string]any{"rewards": in.Rewards, "models": in.Models, "errors": in.Errors}
	for _, c := range in.Columns {
		old[c.Name] = c.Values
	}
	want, _ := json.Marshal(old)
	b, err := json.Marshal(in)
	if err != nil || string(b) != string(want) {
		t.Fatalf("marshal:\n%s (%v)\nwant\n%s", b, err, want)
	}
	if !strings.HasPrefix(string(b), `{"aesthetic":[4,null],"errors":`) {
		t.Errorf("not in key order: %s", b)
	}
	var back RewardResponse
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Errors, in.Errors) || !reflect.DeepEqual(back.Models, in.Models) || !reflect.DeepEqual(back.Rewards, in.Rewards) {
		t.Errorf("round trip: %+v", back)
	}
	var names []string
	for _, c := range back.Columns {
		names = append(names, c.Name)
		if !reflect.DeepEqual(c.Values, in.Column(c.Name)) {
			t.Errorf("column %s: %v, want %v", c.Name, c.Values, in.Column(c.Name))
		}
	}
	if want := []string{"aesthetic", "hp", "hp_logit", "ict"}; !reflect.DeepEqual(names, want) {
		t.Errorf("decoded columns %v, want %v (wire order)", names, want)
	}
	if back.Column("imagereward") != nil {
		t.Error("a column that is not there is not nil")
	}

	// No items, no failures: empty columns stay [], errors is absent.
	empty := RewardResponse{Columns: []Column{{"hp", []*float64{}}, {"ict", nil}}, Models: map[string]string{"hp": "v"}, Rewards: []*float64{}}
	if b, err := json.Marshal(empty); err != nil || string(b) != `{"hp":[],"ict":[],"models":{"hp":"v"},"rewards":[]}` {
		t.Errorf("empty: %s (%v)", b, err)
	}
	for _, bad := range []RewardResponse{{Columns: []Column{{"models", nil}}}, {Columns: []Column{{"hp", nil}, {"hp", nil}}}} {
		if _, err := json.Marshal(bad); err == nil {
			t.Errorf("columns %+v marshalled", bad.Columns)
		}
	}
}
