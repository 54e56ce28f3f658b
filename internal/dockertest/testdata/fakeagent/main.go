// Command fakeagent is a broken agent release for the updater's rollback
// tests: it serves the same /healthz on RADAR_LISTEN_ADDR and has the same
// `healthcheck` subcommand as radar-agent, through the same telemetry code,
// and the mode (stamped with -ldflags "-X main.mode=...") says how it is
// broken: "unhealthy" runs but never passes its healthcheck, "exit" dies at
// once.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/telemetry"
)

var mode = "unhealthy"

func main() {
	cmd := "run"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	addr := os.Getenv("RADAR_LISTEN_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9100"
	}
	switch cmd {
	case "healthcheck":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := telemetry.CheckHealth(ctx, addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("healthy")
	case "version":
		fmt.Println("fakeagent", mode)
	case "run":
		if mode == "exit" {
			fmt.Fprintln(os.Stderr, "fakeagent: broken build, exiting")
			os.Exit(3)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		dataDir := os.Getenv("RADAR_DATA_DIR")
		if dataDir == "" {
			dataDir = "/data"
		}
		// The main loop never beats: /healthz answers 503 for ever.
		h := &telemetry.Health{DataDir: dataDir, MaxSilence: 10 * time.Second}
		log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		if err := telemetry.Serve(ctx, addr, telemetry.Handler(telemetry.NewMetrics(), h), log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "fakeagent: unknown command %q\n", cmd)
		os.Exit(2)
	}
}
