package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess/text"
)

func init() {
	register(command{
		name:    "tokenize",
		args:    "--model DIR TEXT...",
		summary: "print the token ids of each TEXT as the model's tokenizer makes them, one JSON array per line (77 for CLIP, 35 for ImageReward)",
		run:     runTokenize,
	})
}

func runTokenize(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "tokenize")
	dir := fs.String("model", "", "model directory (required)")
	texts, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--model is required")
	}
	if len(texts) == 0 {
		return usagef("give at least one TEXT")
	}
	man, err := models.ReadManifest(*dir)
	if err != nil {
		return err
	}
	if man.Text == nil {
		return fmt.Errorf("model %s (%s) has no tokenizer", *dir, man.Kind)
	}
	vocab := filepath.Join(*dir, man.Text.Vocab)
	var encode func(string) ([]int64, error)
	switch man.Text.Tokenizer {
	case "bert-wordpiece":
		if encode, err = wordPieceEncoder(vocab); err != nil {
			return err
		}
	default:
		tok, err := text.LoadTokenizer(vocab)
		if err != nil {
			return err
		}
		tok.SetContextLength(man.Text.ContextLength)
		encode = tok.Encode
	}
	enc := json.NewEncoder(a.stdout)
	for i, t := range texts {
		ids, err := encode(t)
		if err != nil {
			return fmt.Errorf("TEXT %d (%s): %w", i+1, shortQuote(t), err)
		}
		if err := enc.Encode(ids); err != nil {
			return err
		}
	}
	return nil
}

// shortQuote quotes at most the first 40 bytes of s, so that an error about a huge prompt
// stays a short line.
func shortQuote(s string) string {
	if len(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… %d bytes", strings.ToValidUTF8(s[:40], ""), len(s))
}
