package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/bench/fleet"
)

func init() {
	register("fleet", "10,000 pods on a virtual clock: service restart, 1 h outage, 503 above capacity", runFleet)
}

func runFleet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root (bench/out is written there)")
	o := fleet.Options{Command: strings.TrimSpace("radar-bench fleet " + strings.Join(args, " ")), Log: stderr}
	fs.IntVar(&o.Pods, "pods", 10000, "pods in the fleet")
	fs.DurationVar(&o.PingInterval, "ping-interval", 15*time.Second, "the pods' RADAR_PING_INTERVAL")
	fs.DurationVar(&o.ReconnectMax, "reconnect-max", backoff.ChannelMax, "the pods' RADAR_RECONNECT_MAX (channel backoff cap)")
	fs.DurationVar(&o.Latency, "latency", 200*time.Millisecond, "service time of every request")
	fs.DurationVar(&o.RestartDown, "restart-down", 30*time.Second, "how long a restarting service refuses connections")
	fs.DurationVar(&o.Outage, "outage", time.Hour, "the long outage")
	fs.IntVar(&o.Results, "results", 10, "results queued per pod during the outage")
	fs.IntVar(&o.Capacity, "capacity", 1000, "requests per second the service accepts in the capacity run")
	fs.DurationVar(&o.RetryAfter, "retry-after", 30*time.Second, "Retry-After of the service's answers above capacity")
	fs.BoolVar(&o.Throttle429, "429", false, "answer 429 above capacity instead of 503")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the model's randomness (phases, result times)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, c := range []struct {
		name string
		bad  bool
	}{
		{"-pods", o.Pods < 1}, {"-ping-interval", o.PingInterval <= 0}, {"-reconnect-max", o.ReconnectMax <= 0},
		{"-latency", o.Latency <= 0}, {"-restart-down", o.RestartDown <= 0}, {"-outage", o.Outage <= 0},
		{"-results", o.Results < 1}, {"-capacity", o.Capacity < 1}, {"-retry-after", o.RetryAfter <= 0},
	} {
		if c.bad {
			fmt.Fprintf(stderr, "radar-bench fleet: %s must be positive\n", c.name)
			return 2
		}
	}
	ctx, stop := signalContext()
	defer stop()
	figs, err := fleet.Run(ctx, o)
	return record(*root, "fleet", figs, err, stdout, stderr)
}
