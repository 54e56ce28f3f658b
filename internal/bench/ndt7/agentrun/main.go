// Command agentrun, built as ndt7-agent-run, is the agent's NDT7 test and
// nothing else, the "A" of `radar-bench ndt7`: the runner built as
// internal/agent builds it (options, logger), run on the default route
// (speedtest.Target{}) under the agent's default RADAR_TEST_TIMEOUT,
// writing Result.Raw, the exact bytes the agent uploads, to stdout.
//
// It is a program of its own, built by the benchmark like the agent is
// built (CGO_ENABLED=0, -trimpath, -s -w), because its CPU time and peak RSS
// are measured against M-Lab's CLI: inside radar-bench, which links every
// benchmark (docker, registry and signing clients), the same test starts 8
// MiB heavier. Build: go build ./internal/bench/ndt7/agentrun
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/speedtest/ndt7"
	"github.com/radarpod/radarpod/internal/telemetry"
)

func main() {
	server := flag.String("server", "", "ndt7 server host:port (required)")
	scheme := flag.String("scheme", "ws", "ws or wss")
	timeout := flag.Duration("timeout", 2*time.Minute, "RADAR_TEST_TIMEOUT")
	flag.Parse()
	if *server == "" {
		fmt.Fprintln(os.Stderr, "ndt7-agent-run: -server is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	log := telemetry.NewLogger(os.Stderr, telemetry.LogOptions{Level: slog.LevelInfo})
	r := ndt7.New(ndt7.Options{Server: *server, Scheme: *scheme, Logger: log,
		ClientName: "radar-pod", ClientVersion: buildinfo.Version})
	res, err := r.Run(ctx, speedtest.Target{})
	if _, werr := os.Stdout.Write(res.Raw); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ndt7-agent-run:", err)
		os.Exit(1)
	}
}
