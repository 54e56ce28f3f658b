//go:build linux && cgo

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/bench/ndt7"
	"github.com/radarpod/radarpod/internal/benchreport"
)

// The ndt7 benchmark embeds the real ndt-server (cgo), and runs this binary
// again for its server and delay lines: its children are subcommands too.
func init() {
	register("ndt7", "NDT7 fidelity: agent vs M-Lab ndt7-client on an emulated link (root)", runNDT7)
	for _, c := range ndt7.Children() {
		register(c.Name, c.Summary, c.Main)
	}
}

func runNDT7(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ndt7", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := ndt7.Options{Stdout: stdout, Stderr: stderr}
	rates := fs.String("rates", "20,100,500", "shaped rates in Mbit/s, comma-separated")
	fs.IntVar(&o.Runs, "runs", 5, "tests per tool and rate (alternating agent, ndt7-client)")
	fs.DurationVar(&o.Delay, "delay", 10*time.Millisecond, "one-way delay (the RTT is twice this)")
	fs.StringVar(&o.Scheme, "scheme", "ws", "ws or wss (the server serves ws)")
	root := fs.String("root", ".", "repository root (figures go to bench/out/ndt7.json)")
	fs.StringVar(&o.Client, "ndt7-client", "", "a built ndt7-client v0.10.1; empty builds it from the module cache")
	fs.StringVar(&o.Workdir, "workdir", "", "scratch directory (default: a temporary one, removed afterwards)")
	fs.DurationVar(&o.Settle, "settle", time.Second, "pause between tests")
	fs.BoolVar(&o.Ceiling, "ceiling", true, "measure a bare TCP flow at each rate (the link's ceiling)")
	noWrite := fs.Bool("no-write", false, "print the figures without writing bench/out/ndt7.json")
	fs.BoolVar(&o.Verbose, "v", false, "log link setup and child stderr")
	fs.BoolVar(&o.Emulate, "qemu", false, "instead of ndt7-client, run the agent's runner for armv7 under qemu-arm and for amd64 under qemu-x86_64 (peak RSS ratio; figures to bench/out/ndt7-qemu.json)")
	fs.IntVar(&o.Nice, "nice", -10, "nice value of the server and of both tools alike: shields the measurement from other work on a shared machine")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || r <= 0 {
			fmt.Fprintf(stderr, "ndt7: bad rate %q\n", s)
			return 2
		}
		o.Rates = append(o.Rates, r)
	}
	if o.Runs < 1 || o.Delay <= 0 || (o.Scheme != "ws" && o.Scheme != "wss") {
		fmt.Fprintln(stderr, "ndt7: -runs must be ≥ 1, -delay > 0, -scheme ws")
		return 2
	}
	if err := ndt7.Preflight(o); err != nil {
		fmt.Fprintln(stderr, "ndt7:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	figs, err := ndt7.Run(ctx, o)
	if figs != nil {
		fmt.Fprintln(stdout)
		benchreport.PrintTable(stdout, figs)
		// A partial run (interrupted) must not replace the last full figures;
		// failed tests are in the figures' notes and the exit status.
		if !*noWrite && ctx.Err() == nil {
			group := "ndt7"
			if o.Emulate {
				group = "ndt7-qemu"
			}
			if werr := benchreport.Write(*root, group, figs); werr != nil {
				fmt.Fprintln(stderr, "ndt7:", werr)
				return 1
			}
			fmt.Fprintf(stdout, "\nfigures written to %s\n", filepath.Join(*root, "bench", "out", group+".json"))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "ndt7:", err)
		return 1
	}
	return 0
}
