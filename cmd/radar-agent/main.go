// Command radar-agent is the Radar pod agent: it registers with the pods
// service, keeps the live channel, runs speed tests and delivers their
// results. Configuration is environment only (see README.md).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	// Scratch images have no CA bundle; this embeds a maintained one that
	// crypto/x509 uses when the system has none.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/localapi"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/statuspage"
	"github.com/radarpod/radarpod/internal/telemetry"
)

const usage = `usage: radar-agent [command]

commands:
  run                   run the agent (default)
  healthcheck           exit 0 if the running agent is healthy, 1 if not (Docker HEALTHCHECK)
  test                  run one measurement now, with live progress (--runner ndt7|ookla, --interface IF, --format human|json)
  results               print the results measured here (--since D, --format csv|json)
  check-network         check every connection the pod needs, live (--format table|json)
  network-requirements  print the connections the pod needs (--format markdown|json)
  config                print the effective configuration, secrets redacted
  version               print version, commit and distribution

Configuration is read from the environment; see README.md.
`

// Shutdown budget. Docker (and compose's default stop_grace_period) sends
// SIGKILL 10 s after SIGTERM, so everything after the signal must fit in
// shutdownBudget: the agent's own shutdown (cancel a running test, record
// it, finish or abandon uploads) gets shutdownGrace; flushing queued Sentry
// events gets what is left, at most maxFlush, less exitMargin for the
// process to exit.
const (
	shutdownBudget = 10 * time.Second
	shutdownGrace  = 7 * time.Second
	maxFlush       = 2 * time.Second
	exitMargin     = 500 * time.Millisecond
)

func main() {
	os.Exit(run(os.Args[1:], config.Environ(os.Environ()), os.Stdout, os.Stderr))
}

func run(args []string, environ map[string]string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runAgent(environ, stderr)
	case "healthcheck":
		return healthcheck(environ, stderr)
	case "test":
		return testCommand(args, environ, stdout, stderr)
	case "results":
		return resultsCommand(args, environ, stdout, stderr)
	case "check-network":
		return checkNetwork(args, environ, stdout, stderr)
	case "network-requirements":
		return networkRequirements(args, environ, stdout, stderr)
	case "config":
		cfg, err := config.LoadAgent(environ)
		if err != nil {
			fmt.Fprintln(stderr, "radar-agent:", err)
			return config.ExitCode
		}
		config.Print(stdout, cfg, cfg.Set)
		for _, v := range config.UnknownVariables(environ) {
			fmt.Fprintf(stderr, "warning: %s is not a Radar Pod variable (typo?); it is ignored\n", v)
		}
		return 0
	case "version":
		fmt.Fprintf(stdout, "radar-agent %s\ncommit %s\ndistribution %s\nbuilt %s\n",
			buildinfo.Version, buildinfo.Commit, buildinfo.Distribution(), buildinfo.Date)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "radar-agent: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// healthcheck exits 0 or 1 only: Docker reserves exit status 2.
func healthcheck(environ map[string]string, stderr io.Writer) int {
	cfg, err := config.LoadAgent(environ)
	if err != nil {
		fmt.Fprintln(stderr, "unhealthy:", err)
		return 1
	}
	if cfg.ListenAddr == "" {
		fmt.Fprintln(stderr, "unhealthy: RADAR_LISTEN_ADDR is empty, so there is no health endpoint to ask")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := telemetry.CheckHealth(ctx, cfg.ListenAddr); err != nil {
		fmt.Fprintln(stderr, "unhealthy:", err)
		return 1
	}
	return 0
}

func runAgent(environ map[string]string, stderr io.Writer) int {
	cfg, err := config.LoadAgent(environ)
	if err != nil {
		fmt.Fprintln(stderr, "radar-agent:", err)
		return config.ExitCode
	}
	proc, err := telemetry.Setup(stderr, telemetry.ProcessOptions{
		Component: "radar-agent", DSN: cfg.SentryDSN, Environment: cfg.SentryEnvironment,
		Level: cfg.Level(), Format: cfg.LogFormat, Secrets: []string{cfg.RegistrationToken, cfg.StatusToken},
		// The Sentry limits outlive a crash-looping process (telemetry.SentryLimitsFile).
		StateDir: cfg.DataDir,
	})
	if err != nil {
		fmt.Fprintln(stderr, "radar-agent: SENTRY_DSN:", err)
		return config.ExitCode
	}
	log, sentry, redactor := proc.Log, proc.Sentry, proc.Redactor
	// stopAt is when a signal asked the process to stop (zero otherwise):
	// the flush then gets only what is left of the shutdown budget.
	var stopAt time.Time
	defer func() { sentry.Flush(flushTimeout(stopAt, time.Now())) }()
	defer sentry.RepanicAfterReport()
	for _, v := range config.UnknownVariables(environ) {
		log.Warn("unknown variable ignored; is it a typo?", "variable", v)
	}
	log.Info("radar-agent starting", "version", buildinfo.Version, "commit", buildinfo.Commit,
		"distribution", buildinfo.Distribution(), "server", cfg.ServerURL, "data_dir", cfg.DataDir, "tests", cfg.Tests)

	// The agent's network check covers the updater's connections too (CRL
	// host, registry). Compose gives the agent the two settings they depend
	// on, RADAR_CRL_URL and RADAR_AGENT_IMAGE, none of the updater's
	// secrets; the rest keep their defaults, which the check does not read.
	_, updaterCfg, _ := netcheck.LoadConfig(environ)
	metrics := telemetry.NewMetrics()
	a, err := agent.New(agent.Options{Config: cfg, Updater: updaterCfg, Log: log, Metrics: metrics, Sentry: sentry, Redactor: redactor})
	if err != nil {
		log.Error("cannot start the agent", "err", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		defer sentry.RepanicAfterReport()
		if err := telemetry.Serve(ctx, cfg.ListenAddr, localEndpoint(cfg, a, metrics, log, redactor.String), log); err != nil {
			log.Error("health endpoint failed; Docker will see the agent as unhealthy", "err", err)
		}
	}()
	done := make(chan error, 1)
	go func() {
		defer sentry.RepanicAfterReport()
		done <- a.Run(ctx)
	}()
	code, signalled := supervise(ctx, done, shutdownGrace, log)
	stopAt = signalled
	return code
}

// localEndpoint is everything the agent serves on RADAR_LISTEN_ADDR: one
// mux, so each route is mounted in one place.
func localEndpoint(cfg config.Agent, a *agent.Agent, metrics *telemetry.Metrics, log *slog.Logger, redact func(string) string) http.Handler {
	mux := http.NewServeMux()
	health := telemetry.Handler(metrics, a.Health())
	mux.Handle("/healthz", health)
	mux.Handle("/metrics", health)
	mux.Handle(localapi.Path, localapi.Handler(a, cfg.StatusToken, log))
	// The status page: / and its exports and button (statuspage.Handler).
	mux.Handle("/", statuspage.ForAgent(a, cfg, log, redact).Handler())
	return mux
}

// supervise waits for the agent to stop. Without a signal, Run returning
// at all is a failure unless it returned nil. After a signal (ctx done),
// Run gets grace to finish; the exit status is 0 either way, because the
// stop was asked for and everything the agent keeps on disk is written
// atomically: what could not finish in time (a test that would not die,
// an upload in flight) is logged and abandoned, and is found again at the
// next start. It returns the exit status and when the signal was seen.
func supervise(ctx context.Context, done <-chan error, grace time.Duration, log *slog.Logger) (code int, signalled time.Time) {
	var err error
	select {
	case err = <-done:
		if ctx.Err() == nil {
			if err != nil {
				log.Error("agent stopped", "err", err)
				return 1, time.Time{}
			}
			log.Info("radar-agent stopped")
			return 0, time.Time{}
		}
		// Run finished because of the signal: a normal shutdown.
		signalled = time.Now()
	case <-ctx.Done():
		signalled = time.Now()
		log.Info("shutting down", "grace", grace)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			// Reported (Error reaches Sentry; the flush still has the rest
			// of the budget): a shutdown this slow is a bug to look at.
			log.Error("shutdown grace expired; exiting without waiting for the rest (results and the outbox are written atomically, so nothing is left half-written)",
				"grace", grace)
			return 0, signalled
		}
	}
	if err != nil {
		log.Warn("agent stopped with an error during shutdown", "err", err)
	}
	log.Info("radar-agent stopped")
	return 0, signalled
}

// flushTimeout is how long the final Sentry flush may take: maxFlush, or
// after a signal at stopAt, what remains of the shutdown budget (less the
// margin for exiting), which may be nothing.
func flushTimeout(stopAt, now time.Time) time.Duration {
	if stopAt.IsZero() {
		return maxFlush
	}
	left := stopAt.Add(shutdownBudget - exitMargin).Sub(now)
	return max(0, min(maxFlush, left))
}
