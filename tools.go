//go:build tools

// Package tools pins the modules that packages of this repository use, so
// that go.mod stays complete while those packages are being written.
package tools

import (
	_ "github.com/gin-gonic/gin"
	_ "github.com/maypok86/otter/v2"
	_ "github.com/nlpodyssey/gopickle/pickle"
	_ "github.com/parquet-go/parquet-go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/yalue/onnxruntime_go"
	_ "golang.org/x/image/webp"
	_ "golang.org/x/sync/singleflight"
	_ "golang.org/x/text/unicode/norm"
	_ "google.golang.org/protobuf/encoding/protowire"
)
