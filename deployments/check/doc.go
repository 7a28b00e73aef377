// Package check holds the CI checks of icthp's deployment files: the Helm
// chart renders (with Helm's own chart loader and template engine) for its
// default and GPU values; every rendered manifest, the batch Job, the compose
// file and the Prometheus rules decode strictly into their real types (an
// unknown or misspelt field fails); the Dockerfiles copy only files that
// exist; every command line they give icthp parses; and the Grafana dashboard
// and the alert rules use only metric names a running `icthp serve` exports.
//
// It is its own Go module so that Helm, the Kubernetes API types, compose-go
// and Prometheus stay out of the main module's dependencies. Run it with
//
//	cd deployments/check && go test ./...
//
// (scripts/test.sh does). The tests that start icthp need onnxruntime (`make
// setup`) and build the binary from the repository.
package check
