// Package batch scores whole datasets of generated images with a
// scoring.Service in process: folder trees with sidecar prompts, JSONL/CSV
// manifests and WebDataset tar shards in; JSONL or Parquet out, one row per
// image.
//
// A run is resumable and crash-safe. The input is enumerated in a fixed
// order, split into parts of PartSize items, and each part is written to its
// own file (part-NNNNN.tmp, fsync, rename) before a journal line names it as
// done. A rerun after a crash (even kill -9) skips the parts the journal and
// the files agree on and scores only the rest, so the merged output has no
// duplicates and no gaps.
//
// Sharding (--shard I/N) keeps the items whose key hashes (FNV-1a, 64 bit) to
// I modulo N, so N workers that see the same inputs cover them exactly once,
// whatever order the inputs are listed in.
//
// The work is pipelined: one reader goroutine reads files ahead, several
// batches are in flight in the service at once (one being decoded and
// preprocessed on the service's worker pool while another runs in the
// encoders), and one collector writes parts in the background of both.
package batch
