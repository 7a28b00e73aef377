package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/icthp/icthp/batch"
	"github.com/icthp/icthp/scoring"
)

func init() {
	register(command{
		name: "batch",
		args: "[--ict DIR] [--hp DIR] [--imagereward DIR] [--pickscore|--clipscore|--clipscore100|--hpsv2|--aesthetic DIR] --input PATH... --out FILE.jsonl|FILE.parquet [--shard I/N]",
		summary: "score a whole dataset (folders with .txt prompts, JSONL/CSV manifests, WebDataset tars) into " +
			"JSONL or Parquet, resumably: a rerun skips what is done",
		run: runBatch,
	})
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runBatch(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "batch")
	var mf modelFlags
	mf.register(fs, a)
	var inputs stringList
	fs.Var(&inputs, "input", "dataset to score: a folder, a .tar shard, a .jsonl/.csv manifest, an image, or a glob (repeatable; also as arguments)")
	out := fs.String("out", "", "output file, .jsonl or .parquet (required); parts and the journal go to OUT.parts/")
	shardFlag := fs.String("shard", "", "score only shard I of N (I/N, 0-based): the items whose key hashes to I mod N. "+
		"The shard writes --out with -IIIII-of-NNNNN before the extension (--out scores.parquet --shard 3/8: scores-00003-of-00008.parquet; "+
		"its parts in scores-00003-of-00008.parquet.parts/, a JSONL's embeddings in scores-00003-of-00008.embeddings.npy); N = 1 writes --out itself")
	partSize := fs.Int("part-size", batch.DefaultPartSize, "rows per committed part (what a crash can lose)")
	inFlight := fs.Int("inflight", batch.DefaultInFlight, "batches in the encoders at once (1 is best on CPU; more can help a GPU)")
	decoders := fs.Int("decoders", runtime.GOMAXPROCS(0), "goroutines decoding images ahead of the encoders (default: one per core)")
	embeddings := fs.Bool("embeddings", false, "add image embeddings: a list column in Parquet, OUT.embeddings.npy beside JSONL")
	keepParts := fs.Bool("keep-parts", false, "keep the part files after merging them")
	progressFlag := fs.String("progress", "auto", "progress line on stderr: auto (when stderr is a terminal), always, never")
	jsonSummary := fs.Bool("json", false, "print the summary as one JSON object on stdout")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	inputs = append(inputs, pos...)
	if len(inputs) == 0 {
		return usagef("give at least one --input")
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if _, err := batch.FormatOf(*out); err != nil {
		return usageError{err.Error()}
	}
	shard, err := batch.ParseShard(*shardFlag)
	if err != nil {
		return usageError{err.Error()}
	}
	if *partSize <= 0 || *inFlight <= 0 || *decoders <= 0 {
		return usagef("--part-size, --inflight and --decoders must be positive")
	}
	showProgress, err := progressWanted(a, *progressFlag)
	if err != nil {
		return err
	}
	for _, in := range inputs {
		if _, err := os.Stat(in); err != nil && !strings.ContainsAny(in, "*?[") {
			return usagef("input %s: %v", in, errors.Unwrap(err))
		}
	}

	l, err := mf.loadModels(a, scoring.Options{})
	if err != nil {
		return err
	}
	defer l.close()
	o := batch.Options{Inputs: inputs, Out: *out, Shard: shard, BatchSize: mf.batch, PartSize: *partSize,
		InFlight: *inFlight, Decoders: *decoders, Embeddings: *embeddings, KeepParts: *keepParts,
		MaxImageBytes: mf.maxBytes, MaxImagePixels: mf.maxPixels}
	if *embeddings {
		for _, m := range l.svc.Models() {
			if m.Embeds {
				o.EmbeddingDim = m.Manifest().EmbeddingDim
				break
			}
		}
		if o.EmbeddingDim == 0 {
			return usagef("--embeddings needs --ict or --hp")
		}
	}
	if showProgress {
		o.Progress = a.stderr
	}
	sum, err := batch.Run(ctx, l.svc, o)
	if err != nil {
		if ctx.Err() != nil && sum != nil {
			return fmt.Errorf("interrupted after %d new images (%d parts were done before); run the same command again to resume", sum.Scored, sum.PartsSkipped)
		}
		return err
	}
	return reportBatch(a, sum, *jsonSummary)
}

// progressWanted resolves --progress: auto shows the progress line only when
// stderr is a terminal.
func progressWanted(a *app, flag string) (bool, error) {
	switch flag {
	case "auto":
		f, ok := a.stderr.(*os.File)
		return ok && term.IsTerminal(int(f.Fd())), nil
	case "always":
		return true, nil
	case "never":
		return false, nil
	default:
		return false, usagef("--progress must be auto, always or never")
	}
}

// reportBatch prints the run's summary: one JSON object on stdout with --json,
// and always the one-line human summary on stderr.
func reportBatch(a *app, sum *batch.Summary, asJSON bool) error {
	if asJSON {
		if err := json.NewEncoder(a.stdout).Encode(struct {
			*batch.Summary
			ImagesPerSecond float64 `json:"images_per_s"`
			ElapsedS        float64 `json:"elapsed_s"`
		}{sum, sum.ImagesPerSecond(), sum.Elapsed.Seconds()}); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stderr, "icthp batch: %d images in %s: %d scored now (%.1f img/s), %d done before; %d with errors; wrote %s\n",
		sum.Items, sum.Elapsed.Round(time.Millisecond), sum.Scored, sum.ImagesPerSecond(), sum.Skipped, sum.Errors, sum.Out)
	return nil
}
