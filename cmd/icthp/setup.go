package main

import (
	"context"
	"fmt"

	"github.com/icthp/icthp/models/ortlib"
)

func init() {
	register(command{
		name:    "setup",
		args:    "[--ort-lib PATH | --ort-version V]",
		summary: "fetch onnxruntime " + ortlib.Version + " into the cache (npm pack onnxruntime-node), check that it loads, print where it is",
		run:     runSetup,
	})
}

func runSetup(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "setup")
	lib := fs.String("ort-lib", "", "use this libonnxruntime.so instead of fetching one (also $"+ortlib.EnvLib+")")
	version := fs.String("ort-version", ortlib.Version, "onnxruntime-node release to fetch (tests run 1.29.0, 1.30.0 and 1.31.1; load another with --ort-lib)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	path := *lib
	if path == "" {
		path = a.getenv(ortlib.EnvLib)
	}
	if path == "" {
		cache, err := ortlib.CacheDir()
		if err != nil {
			return err
		}
		if path, err = ortlib.InstallVersion(ctx, cache, *version, a.stderr); err != nil {
			return err
		}
	}
	info, err := ortlib.Init(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "onnxruntime %s loads from %s\n", info.Version, info.Path)
	return nil
}
