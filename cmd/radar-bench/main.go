// Command radar-bench runs Radar Pod's benchmarks and fault drills, the
// programs behind `make bench` and `make faults`. It is a development tool:
// it is not shipped in the images and may use cgo (the in-process
// ndt-server). It parses each subcommand's flags and hands over to the
// scenario's package under internal/bench (fleet, footprint, ndt7, outbox,
// update); the figures they return are recorded through internal/benchreport.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/bench/footprint"
	"github.com/radarpod/radarpod/internal/bench/outbox"
	"github.com/radarpod/radarpod/internal/bench/update"
	"github.com/radarpod/radarpod/internal/benchreport"
)

// command is one subcommand: it gets its arguments and returns the exit status.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

// register adds a subcommand; called from init.
func register(name, summary string, run func(args []string, stdout, stderr io.Writer) int) {
	if _, dup := commands[name]; dup {
		panic("radar-bench: duplicate command " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

func init() {
	register("footprint", "idle RSS of agent and updater, binary and image sizes", runFootprint)
	register("outbox", "delivery of 10,000 buffered results after an outage; bytes on disk per result", runOutbox)
	register("update", "agent update and rollback on the real Docker engine with a loopback registry", runUpdate)
	register("report", "merge bench/out/*.json into bench/results.json and print the table", runReport)
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "radar-bench: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: radar-bench COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, commands[n].summary)
	}
}

func runFootprint(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("footprint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root (bench/out is written there)")
	o := footprint.Options{Command: "radar-bench footprint " + strings.Join(args, " "), Log: stderr}
	fs.StringVar(&o.AgentBin, "agent", "", "radar-agent binary to run (default: build one, static, like `make build`)")
	fs.StringVar(&o.UpdaterBin, "updater", "", "radar-updater binary to run (default: build one)")
	fs.StringVar(&o.Dist, "dist", "dist", "directory `make build-all` filled (binary sizes)")
	fs.StringVar(&o.AgentImage, "agent-image", "", "agent image `make images` built (e.g. ghcr.io/radarpod/radar-agent:1.2.3); empty skips image sizes")
	fs.StringVar(&o.UpdaterImage, "updater-image", "", "updater image `make images` built")
	fs.DurationVar(&o.Settle, "settle", 60*time.Second, "idle time before RSS is read")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	figs, err := footprint.Run(ctx, o)
	return record(*root, "footprint", figs, err, stdout, stderr)
}

func runOutbox(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root (bench/out is written there)")
	o := outbox.Options{Command: "radar-bench outbox " + strings.Join(args, " "), Log: stderr}
	fs.StringVar(&o.AgentBin, "agent", "", "radar-agent binary (default: build one, static)")
	fs.IntVar(&o.N, "n", 10000, "results buffered before the service returns")
	fs.IntVar(&o.Runs, "runs", 5, "delivery runs (median reported)")
	fs.DurationVar(&o.Outage, "outage", 30*time.Second, "how long the service answers 503 before it returns (first run)")
	fs.DurationVar(&o.OutageStep, "outage-step", 3*time.Second, "added to the outage at each further run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	figs, err := outbox.Run(ctx, o)
	return record(*root, "outbox", figs, err, stdout, stderr)
}

func runUpdate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root (bench/out is written there)")
	o := update.Options{Command: "radar-bench update " + strings.Join(args, " "), Log: stderr}
	fs.StringVar(&o.UpdaterBin, "updater", "", "radar-updater binary (default: build one, static)")
	fs.IntVar(&o.Runs, "runs", 3, "updates and rollbacks per healthcheck (medians reported)")
	checks := fs.String("healthchecks", "compose,fast", "agent healthchecks to measure with: compose (as shipped), fast (1 s, as the engine tests)")
	fs.DurationVar(&o.HealthTimeout, "health-timeout", 90*time.Second, "RADAR_HEALTH_TIMEOUT of the updater (the shipped default is 90s)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.Healthchecks = strings.Split(*checks, ",")
	if err := o.Validate(); err != nil {
		fmt.Fprintln(stderr, "radar-bench update:", err)
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	figs, err := update.Run(ctx, o)
	return record(*root, "update", figs, err, stdout, stderr)
}

func runReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	figs, err := benchreport.Merge(*root)
	if err != nil {
		fmt.Fprintln(stderr, "radar-bench report:", err)
		return 1
	}
	benchreport.PrintTable(stdout, figs)
	if missed := benchreport.Failed(figs); len(missed) > 0 {
		fmt.Fprintf(stdout, "\n%d of %d figures missed their target (see bench/results.json)\n", len(missed), len(figs))
	}
	return 0
}

// record writes a scenario's figures to bench/out/<group>.json under root
// and prints them. Missed targets are not errors: the table shows them.
func record(root, group string, figs []benchreport.Figure, err error, stdout, stderr io.Writer) int {
	if err != nil {
		fmt.Fprintf(stderr, "radar-bench %s: %v\n", group, err)
		return 1
	}
	if err := benchreport.Write(root, group, figs); err != nil {
		fmt.Fprintf(stderr, "radar-bench %s: %v\n", group, err)
		return 1
	}
	benchreport.PrintTable(stdout, figs)
	return 0
}

// signalContext is cancelled by SIGINT/SIGTERM, so an interrupted
// benchmark still runs its cleanups.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	// Output piped into `head` must not kill the benchmark before its
	// cleanups: a write to a closed pipe then just fails.
	signal.Ignore(syscall.SIGPIPE)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
