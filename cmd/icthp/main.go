// Command icthp scores generated images with the ICT and HP reward models
// (and ImageReward): it converts Hugging Face checkpoints into ONNX model
// directories, scores images from the command line and in batch, serves an
// HTTP API, and load-tests it. Run `icthp help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand. run returns a usageError for bad arguments
// (exit status 2) and any other error for failures (exit status 1).
type command struct {
	name    string
	args    string // synopsis after the name
	summary string
	run     func(ctx context.Context, a *app, args []string) error
}

// app is what every subcommand gets: where to write, and the environment.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// usageError marks a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError carries a chosen exit status with an already-printed message
// (for example `score` when some images failed).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// commands is filled by each subcommand's file (register in init), so that
// the files stay independent.
func commands() map[string]command {
	m := map[string]command{}
	for _, c := range registry {
		m[c.name] = c
	}
	return m
}

var registry []command // written only by init functions, read-only afterwards

func register(c command) { registry = append(registry, c) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status: 0 success, 2
// bad usage, 1 any other failure, with one line on stderr.
func run(ctx context.Context, a *app, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(a.stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(a.stderr, "icthp: unknown command %q (run `icthp help`)\n", args[0])
		return 2
	}
	err := c.run(ctx, a, args[1:])
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "icthp %s: %s (usage: icthp %s %s)\n", c.name, oneLine(ue.msg), c.name, c.args)
		return 2
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(a.stderr, "icthp %s: %s\n", c.name, oneLine(ee.msg))
		}
		return ee.code
	default:
		fmt.Fprintf(a.stderr, "icthp %s: %s\n", c.name, oneLine(err.Error()))
		return 1
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func printHelp(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "icthp: score generated images with reward models: ICT, HP, ImageReward, PickScore, CLIPScore, HPSv2, aesthetic")
	fmt.Fprintln(w, "\nusage:")
	for _, n := range slices.Sorted(maps.Keys(cmds)) {
		c := cmds[n]
		fmt.Fprintf(w, "  icthp %s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nRun `icthp COMMAND -h` for a command's flags.")
}

// newFlags makes a FlagSet that reports errors as usage errors instead of
// exiting, and prints its help to stderr for -h only: a parse error is one
// line (run prints it), not the error plus every flag's description.
func newFlags(a *app, c string) *flag.FlagSet {
	fs := flag.NewFlagSet("icthp "+c, flag.ContinueOnError)
	fs.SetOutput(flagOutput{Writer: a.stderr, getenv: a.getenv})
	fs.Usage = func() {}
	return fs
}

// flagOutput is a FlagSet's output that also carries the app's environment
// to parseFlags, so that every command's flags get their environment
// variables (envName) with no change to the commands.
type flagOutput struct {
	io.Writer
	getenv func(string) string
}

// envName is the environment variable of a flag: ICTHP_ and the flag's name
// in upper case with - as _ (--queue-size: ICTHP_QUEUE_SIZE).
func envName(flagName string) string {
	return "ICTHP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envHelp ends every command's -h.
const envHelp = "\nEvery flag can be set by its environment variable instead: ICTHP_ and the flag's name in\n" +
	"upper case with - as _ (--queue-size: ICTHP_QUEUE_SIZE); a flag on the command line wins.\n"

// applyEnv sets each flag the command line did not set from its
// environment variable (when set and not empty): after parsing, so that a
// repeatable flag given on the command line is not added to the variable's
// value. A value the flag refuses is a usage error naming the variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if v == "" || bad != nil || set[f.Name] {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			bad = usagef("$%s=%q: %v", name, v, err)
		}
	})
	return bad
}

// parseFlags parses args, allowing flags after positional arguments (as
// users type `icthp score img.png --hp dir`), then gives the flags not on
// the command line their environment variables' values.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if fo, ok := out.(flagOutput); ok && fo.getenv != nil {
		if err := applyEnv(fs, fo.getenv); err != nil {
			return nil, err
		}
	}
	return pos, nil
}

// parseArgs is parseFlags without the environment.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	out := fs.Output()
	fs.SetOutput(io.Discard) // the flag package would print the error too
	defer fs.SetOutput(out)
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(out, "usage of %s:\n", fs.Name())
				fs.SetOutput(out)
				fs.PrintDefaults()
				fmt.Fprint(out, envHelp)
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
