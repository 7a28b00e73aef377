// Package onnxgraph builds ONNX models: a small graph-construction API and a
// writer that streams initializer payloads into an external data file, so
// that a model of several gigabytes is written with one tensor in memory at a
// time and loads with onnxruntime's memory-mapped external data.
package onnxgraph

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/x448/float16"
)

// DataType is an ONNX TensorProto element type.
type DataType int32

// The element types this project uses.
const (
	Float    DataType = 1
	Uint8    DataType = 2
	Int8     DataType = 3
	Int32    DataType = 6
	Int64    DataType = 7
	Bool     DataType = 9
	Float16  DataType = 10
	Double   DataType = 11
	BFloat16 DataType = 16
)

// Size is the element size in bytes.
func (d DataType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Float16, BFloat16:
		return 2
	case Float, Int32:
		return 4
	case Int64, Double:
		return 8
	}
	return 0
}

// String names the type as ONNX does.
func (d DataType) String() string {
	switch d {
	case Float:
		return "float32"
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	case Float16:
		return "float16"
	case Double:
		return "float64"
	case BFloat16:
		return "bfloat16"
	}
	return "type" + strconv.Itoa(int(d))
}

// Dim is one dimension of a graph input or output: a fixed size, or a named
// symbolic one such as "batch".
type Dim struct {
	Value int64
	Param string
}

// D is a fixed dimension; P a symbolic one.
func D(v int64) Dim     { return Dim{Value: v} }
func P(name string) Dim { return Dim{Param: name} }

// Attr is a node attribute.
type Attr struct{ m msg }

// AttrInt, AttrFloat, AttrInts, AttrFloats and AttrString make attributes.
func AttrInt(name string, v int64) Attr {
	return Attr{msg(nil).str(attrName, name).int64(attrI, v).varint(attrType, attrTypeInt)}
}
func AttrFloat(name string, v float32) Attr {
	return Attr{msg(nil).str(attrName, name).float(attrF, v).varint(attrType, attrTypeFloat)}
}
func AttrInts(name string, vs ...int64) Attr {
	return Attr{msg(nil).str(attrName, name).packedInts(attrInts, vs).varint(attrType, attrTypeInts)}
}
func AttrFloats(name string, vs ...float32) Attr {
	return Attr{msg(nil).str(attrName, name).packedFloats(attrFloats, vs).varint(attrType, attrTypeFloats)}
}
func AttrString(name, v string) Attr {
	return Attr{msg(nil).str(attrName, name).str(attrS, v).varint(attrType, attrTypeString)}
}

// AttrTensor is a tensor-valued attribute (Constant's value, ConstantOfShape).
func AttrTensor(name string, dt DataType, dims []int64, raw []byte) Attr {
	t := msg(nil).packedInts(tensorDims, dims).varint(tensorDataType, uint64(dt)).bytes(tensorRawData, raw)
	return Attr{msg(nil).str(attrName, name).sub(attrT, t).varint(attrType, attrTypeTensor)}
}

// Source yields a weight's values when the writer reaches it.
type Source func() ([]float32, error)

// ByteSource yields a weight already encoded (little-endian elements of its
// type: quantised codes, scales) when the writer reaches it.
type ByteSource func() ([]byte, error)

type initializer struct {
	name  string
	dt    DataType
	dims  []int64
	src   Source // streamed to the data file, converted to dt
	bytes ByteSource
	raw   []byte // small constants, inline
}

// Graph is an ONNX graph under construction. It is not safe for concurrent use.
type Graph struct {
	name     string
	opsets   map[string]int64
	nodes    []msg
	inputs   []msg
	outputs  []msg
	inits    []initializer
	names    map[string]bool
	counter  int
	metadata [][2]string

	// WeightType is the element type weights are stored as: Float, or
	// Float16 for half-precision graphs.
	WeightType DataType
}

// New starts a graph using the default ONNX domain at the given opset.
func New(name string, opset int64) *Graph {
	return &Graph{name: name, opsets: map[string]int64{"": opset}, names: map[string]bool{}, WeightType: Float}
}

// UseDomain declares an operator set the graph uses, such as com.microsoft.
func (g *Graph) UseDomain(domain string, version int64) { g.opsets[domain] = version }

// Metadata adds a key/value pair to the model's metadata_props.
func (g *Graph) Metadata(k, v string) { g.metadata = append(g.metadata, [2]string{k, v}) }

func valueInfo(name string, dt DataType, dims []Dim) msg {
	var shape msg
	for _, d := range dims {
		var dm msg
		if d.Param != "" {
			dm = dm.str(dimParam, d.Param)
		} else {
			dm = dm.int64(dimValue, d.Value)
		}
		shape = shape.sub(shapeDim, dm)
	}
	tt := msg(nil).varint(tensorElemType, uint64(dt)).sub(tensorShape, shape)
	typ := msg(nil).sub(typeTensor, tt)
	return msg(nil).str(valueName, name).sub(valueType, typ)
}

// Input declares a graph input.
func (g *Graph) Input(name string, dt DataType, dims ...Dim) string {
	g.names[name] = true
	g.inputs = append(g.inputs, valueInfo(name, dt, dims))
	return name
}

// Output declares a graph output; the value must be produced by a node.
func (g *Graph) Output(name string, dt DataType, dims ...Dim) {
	g.outputs = append(g.outputs, valueInfo(name, dt, dims))
}

// fresh returns an unused value name built from hint.
func (g *Graph) fresh(hint string) string {
	for {
		g.counter++
		n := hint + "_" + strconv.Itoa(g.counter)
		if !g.names[n] {
			g.names[n] = true
			return n
		}
	}
}

// Node adds a node with explicit output names ("" leaves an optional output
// out). The domain is "" for standard operators.
func (g *Graph) Node(domain, op string, inputs, outputs []string, attrs ...Attr) {
	m := msg(nil)
	for _, in := range inputs {
		m = m.str(nodeInput, in)
	}
	for _, out := range outputs {
		if out != "" {
			g.names[out] = true
		}
		m = m.str(nodeOutput, out)
	}
	m = m.str(nodeName, g.fresh(op)).str(nodeOpType, op)
	for _, a := range attrs {
		m = m.sub(nodeAttribute, a.m)
	}
	if domain != "" {
		m = m.str(nodeDomain, domain)
	}
	g.nodes = append(g.nodes, m)
}

// Op adds a standard operator with one output and returns the output's name.
func (g *Graph) Op(op string, inputs []string, attrs ...Attr) string {
	out := g.fresh(op)
	g.Node("", op, inputs, []string{out}, attrs...)
	return out
}

// OpMS adds a com.microsoft contrib operator with n outputs.
func (g *Graph) OpMS(op string, inputs []string, n int, attrs ...Attr) []string {
	outs := make([]string, n)
	for i := range outs {
		outs[i] = g.fresh(op)
	}
	g.Node("com.microsoft", op, inputs, outs, attrs...)
	return outs
}

// Weight adds an initializer whose values are read from src when the graph
// is saved, stored as g.WeightType.
func (g *Graph) Weight(name string, dims []int64, src Source) string {
	if g.names[name] {
		panic("onnxgraph: duplicate initializer " + name) // a builder bug, not input
	}
	g.names[name] = true
	g.inits = append(g.inits, initializer{name: name, dt: g.WeightType, dims: dims, src: src})
	return name
}

// WeightFloat32 is Weight stored as float32 whatever WeightType says (for
// values that must keep full precision, such as LayerNorm parameters under
// mixed precision).
func (g *Graph) WeightFloat32(name string, dims []int64, src Source) string {
	n := g.Weight(name, dims, src)
	g.inits[len(g.inits)-1].dt = Float
	return n
}

// WeightEncoded adds an initializer of any element type whose bytes src
// yields when the graph is saved (quantised weights and their scales).
func (g *Graph) WeightEncoded(name string, dt DataType, dims []int64, src ByteSource) string {
	if g.names[name] {
		panic("onnxgraph: duplicate initializer " + name) // a builder bug, not input
	}
	g.names[name] = true
	g.inits = append(g.inits, initializer{name: name, dt: dt, dims: dims, bytes: src})
	return name
}

// ConstInt64 adds a small inline int64 initializer.
func (g *Graph) ConstInt64(hint string, dims []int64, vals ...int64) string {
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	name := g.fresh(hint)
	g.inits = append(g.inits, initializer{name: name, dt: Int64, dims: dims, raw: raw})
	return name
}

// ConstFloat adds a small inline initializer stored as g.WeightType.
func (g *Graph) ConstFloat(hint string, dims []int64, vals ...float32) string {
	name := g.fresh(hint)
	g.inits = append(g.inits, initializer{name: name, dt: g.WeightType, dims: dims, raw: encodeFloats(vals, g.WeightType)})
	return name
}

func encodeFloats(vals []float32, dt DataType) []byte {
	switch dt {
	case Float16:
		raw := make([]byte, 2*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(float16.Fromfloat32(v)))
		}
		return raw
	default:
		raw := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		return raw
	}
}

// SaveResult describes a written model.
type SaveResult struct {
	ModelFile   string // base name of the .onnx file
	DataFile    string // base name of the external data file ("" when none)
	WeightBytes int64
	// Digest is the SHA-256 of every weight's name, type, shape and bytes in
	// order: the same weights give the same digest, whatever the graph.
	Digest string
}

// dataAlign is the alignment of each tensor in the external data file: a
// page, so onnxruntime can memory-map large tensors instead of copying them.
const dataAlign = 4096

// Save writes the model to path and its weights to path+".data". Each
// weight's Source is called once, in order, and its values dropped after
// they are written.
func (g *Graph) Save(path string) (SaveResult, error) {
	res := SaveResult{ModelFile: filepath.Base(path)}
	dataPath := path + ".data"
	df, err := os.Create(dataPath)
	if err != nil {
		return res, fmt.Errorf("onnxgraph: %w", err)
	}
	defer df.Close()
	bw := bufio.NewWriterSize(df, 1<<20)
	h := sha256.New()
	var offset int64
	graph := msg(nil)
	for _, nd := range g.nodes {
		graph = graph.sub(graphNode, nd)
	}
	graph = graph.str(graphName, g.name)
	for _, in := range g.inits {
		t := msg(nil).packedInts(tensorDims, in.dims).varint(tensorDataType, uint64(in.dt)).str(tensorName, in.name)
		if in.src == nil && in.bytes == nil {
			t = t.bytes(tensorRawData, in.raw)
			graph = graph.sub(graphInitializer, t)
			continue
		}
		raw, err := in.encode()
		if err != nil {
			return res, err
		}
		if pad := (dataAlign - offset%dataAlign) % dataAlign; pad > 0 {
			if _, err := bw.Write(make([]byte, pad)); err != nil {
				return res, fmt.Errorf("onnxgraph: %w", err)
			}
			offset += pad
		}
		if _, err := bw.Write(raw); err != nil {
			return res, fmt.Errorf("onnxgraph: %w", err)
		}
		fmt.Fprintf(h, "%s|%d|%v|", in.name, in.dt, in.dims)
		h.Write(raw)
		t = t.sub(tensorExternalData, msg(nil).str(entryKey, "location").str(entryValue, filepath.Base(dataPath)))
		t = t.sub(tensorExternalData, msg(nil).str(entryKey, "offset").str(entryValue, strconv.FormatInt(offset, 10)))
		t = t.sub(tensorExternalData, msg(nil).str(entryKey, "length").str(entryValue, strconv.Itoa(len(raw))))
		t = t.varint(tensorDataLocation, locationExtern)
		graph = graph.sub(graphInitializer, t)
		offset += int64(len(raw))
		res.WeightBytes += int64(len(raw))
	}
	for _, in := range g.inputs {
		graph = graph.sub(graphInput, in)
	}
	for _, out := range g.outputs {
		graph = graph.sub(graphOutput, out)
	}
	if err := bw.Flush(); err != nil {
		return res, fmt.Errorf("onnxgraph: %w", err)
	}
	if err := df.Close(); err != nil {
		return res, fmt.Errorf("onnxgraph: %w", err)
	}
	if res.WeightBytes > 0 {
		res.DataFile = filepath.Base(dataPath)
	} else {
		os.Remove(dataPath)
	}
	res.Digest = hex.EncodeToString(h.Sum(nil))

	if err := writeFileAtomic(path, g.modelProto(graph)); err != nil {
		return res, err
	}
	return res, nil
}

// modelProto wraps the encoded graph in the ModelProto: IR version,
// producer, opset imports and metadata.
func (g *Graph) modelProto(graph msg) msg {
	model := msg(nil).int64(modelIRVersion, currentIRVersion).
		str(modelProducerName, "icthp").str(modelProducerVer, "1")
	model = model.sub(modelGraph, graph)
	// Deterministic opset order: default domain first, then by name.
	domains := []string{""}
	for d := range g.opsets {
		if d != "" {
			domains = append(domains, d)
		}
	}
	slices.Sort(domains[1:])
	for _, d := range domains {
		model = model.sub(modelOpsetImport, msg(nil).str(opsetDomain, d).int64(opsetVersion, g.opsets[d]))
	}
	for _, kv := range g.metadata {
		model = model.sub(modelMetadataProps, msg(nil).str(entryKey, kv[0]).str(entryValue, kv[1]))
	}
	return model
}

// encode reads a streamed initializer and checks its size against its shape.
func (in initializer) encode() ([]byte, error) {
	want := int64(1)
	for _, d := range in.dims {
		want *= d
	}
	if in.bytes != nil {
		raw, err := in.bytes()
		if err != nil {
			return nil, fmt.Errorf("onnxgraph: weight %s: %w", in.name, err)
		}
		if int64(len(raw)) != want*int64(in.dt.Size()) {
			return nil, fmt.Errorf("onnxgraph: weight %s has %d bytes, shape %v of %s needs %d", in.name, len(raw), in.dims, in.dt, want*int64(in.dt.Size()))
		}
		return raw, nil
	}
	vals, err := in.src()
	if err != nil {
		return nil, fmt.Errorf("onnxgraph: weight %s: %w", in.name, err)
	}
	if int64(len(vals)) != want {
		return nil, fmt.Errorf("onnxgraph: weight %s has %d values, shape %v needs %d", in.name, len(vals), in.dims, want)
	}
	return encodeFloats(vals, in.dt), nil
}

// writeFileAtomic writes via a temporary file and a rename, so a reader never
// sees half a model.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("onnxgraph: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("onnxgraph: %w", err)
	}
	return nil
}
