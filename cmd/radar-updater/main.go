// Command radar-updater is the Radar pod's sidecar updater: it watches the
// agent's update request in the shared data volume, verifies the announced
// image's signature and revocation status, and replaces the agent container
// with rollback. It has no open port and never talks to the pods service.
// Configuration is environment only (see README.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	// Scratch images have no CA bundle; this embeds a maintained one that
	// crypto/x509 uses when the system has none (the CRL is on GCS).
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/dockerauth"
	"github.com/radarpod/radarpod/internal/memtrim"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/update"
	"github.com/radarpod/radarpod/internal/update/statedir"
	"github.com/radarpod/radarpod/internal/update/verify"
)

const usage = `usage: radar-updater [command]

commands:
  run              watch for update requests and replace the agent container (default)
  healthcheck      exit 0 if the running updater is alive, 1 if not (Docker HEALTHCHECK)
  config           print the effective configuration, secrets redacted
  reset-crl-state  move an unreadable CRL state aside (it makes every install
                   refused as crl_state_corrupt); replay protection restarts
                   from the next CRL fetched
  version          print version, commit and distribution

Configuration is read from the environment; see README.md.
`

func main() {
	os.Exit(run(os.Args[1:], config.Environ(os.Environ()), os.Stdout, os.Stderr))
}

func run(args []string, environ map[string]string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "run":
		return runUpdater(environ, stderr)
	case "healthcheck":
		cfg, err := config.LoadUpdater(environ)
		if err != nil {
			fmt.Fprintln(stderr, "radar-updater:", err)
			return 1
		}
		if err := update.CheckAlive(cfg.StateDir, time.Now(), update.MaxSilence); err != nil {
			fmt.Fprintln(stderr, "unhealthy:", err)
			return 1
		}
		fmt.Fprintln(stdout, "healthy")
		return 0
	case "config":
		cfg, err := config.LoadUpdater(environ)
		if err != nil {
			fmt.Fprintln(stderr, "radar-updater:", err)
			return config.ExitCode
		}
		config.Print(stdout, cfg, cfg.Set)
		warnUnknown(environ, func(v string) {
			fmt.Fprintf(stderr, "warning: %s is not a Radar Pod variable (typo?); it is ignored\n", v)
		})
		return 0
	case "reset-crl-state":
		cfg, err := config.LoadUpdater(environ)
		if err != nil {
			fmt.Fprintln(stderr, "radar-updater:", err)
			return config.ExitCode
		}
		moved, err := verify.ResetCRLState(cfg.StateDir)
		if err != nil {
			fmt.Fprintln(stderr, "radar-updater:", err)
			return 1
		}
		if moved == "" {
			fmt.Fprintf(stdout, "no CRL state in %s; nothing to reset\n", cfg.StateDir)
			return 0
		}
		fmt.Fprintf(stdout, "CRL state moved to %s; the next CRL fetched sets the highest CRL number again\n", moved)
		return 0
	case "version":
		fmt.Fprintf(stdout, "radar-updater %s\ncommit %s\ndistribution %s\nbuilt %s\n",
			buildinfo.Version, buildinfo.Commit, buildinfo.Distribution(), buildinfo.Date)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "radar-updater: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func warnUnknown(environ map[string]string, warn func(string)) {
	for _, v := range config.UnknownVariables(environ) {
		warn(v)
	}
}

func runUpdater(environ map[string]string, stderr io.Writer) int {
	cfg, err := config.LoadUpdater(environ)
	if err != nil {
		fmt.Fprintln(stderr, "radar-updater:", err)
		return config.ExitCode
	}
	proc, err := telemetry.Setup(stderr, telemetry.ProcessOptions{
		Component: update.Component, DSN: cfg.SentryDSN, Environment: cfg.SentryEnvironment,
		Level: cfg.Level(), Format: cfg.LogFormat,
		// The Sentry limits outlive a crash-looping process (telemetry.SentryLimitsFile).
		StateDir: cfg.StateDir,
	})
	if err != nil {
		fmt.Fprintln(stderr, "radar-updater: SENTRY_DSN:", err)
		return config.ExitCode
	}
	log, sentry := proc.Log, proc.Sentry
	defer sentry.Flush(2 * time.Second)
	defer sentry.RepanicAfterReport()
	warnUnknown(environ, func(v string) {
		log.Warn("unknown variable ignored; is it a typo?", "variable", v)
	})

	rootPEM, err := os.ReadFile(cfg.RootCAFile)
	if err != nil {
		log.Error("RADAR_ROOT_CA_FILE unreadable", "err", err)
		return config.ExitCode
	}
	auth, err := dockerauth.Load(environ)
	if err != nil {
		log.Error("registry credentials unusable (DOCKER_CONFIG, DOCKER_AUTH_CONFIG)", "err", err)
		return config.ExitCode
	}
	if len(auth.Helpers) > 0 {
		log.Warn("docker credential helpers are not supported; those registries are reached anonymously", "registries", auth.Helpers)
	}
	// Opened once, shared by the verifier (CRL state) and the updater
	// (journal, heartbeat): one directory pinned at start-up.
	state, err := statedir.Open(cfg.StateDir)
	if err != nil {
		log.Error("RADAR_UPDATER_STATE_DIR unusable", "err", err)
		return config.ExitCode
	}
	defer state.Close()
	verifier, err := verify.New(verify.Config{
		Repository: cfg.AgentImage,
		Component:  container.AgentComponent,
		RootCAPEM:  rootPEM,
		CRLURL:     cfg.CRLURL,
		StateDir:   cfg.StateDir,
		State:      state,
		Auth:       auth,
		Logger:     log,
	})
	if err != nil {
		log.Error("invalid verifier configuration (RADAR_AGENT_IMAGE, RADAR_ROOT_CA_FILE, RADAR_CRL_URL, RADAR_UPDATER_STATE_DIR)", "err", err)
		return config.ExitCode
	}
	docker, err := container.New(container.Options{UserAgent: buildinfo.UpdaterUserAgent(), Auth: auth, Logger: log})
	if err != nil {
		log.Error("docker client (DOCKER_HOST)", "err", err)
		return config.ExitCode
	}
	defer docker.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := docker.Ping(ctx); err != nil {
		// Not fatal: the loop retries every Docker call with backoff, and
		// the engine may still be starting after a reboot.
		log.Warn("docker engine not reachable yet", "err", err)
	}
	u, err := update.New(update.Options{
		DataDir:  cfg.DataDir,
		StateDir: cfg.StateDir,
		State:    state,
		// Older updaters kept their state here, in the agent's volume.
		LegacyStateDir: config.LegacyUpdaterStateSubdir,
		CRLState:       verifier,
		AgentName:      cfg.AgentContainer,
		Repository:     cfg.AgentImage,
		HealthTimeout:  cfg.HealthTimeout,
		TestTimeout:    cfg.TestTimeout,
		Logger:         log,
	}, docker, verifier)
	if err != nil {
		log.Error("updater", "err", err)
		return config.ExitCode
	}
	log.Info("radar-updater starting", "version", buildinfo.Version, "registry_credentials", auth.Source)
	// Start-up is over (config, Sentry, the verifier, the Docker client
	// and its first ping): the updater idles from here, polling once a
	// second, so give back what start-up left resident (memtrim's doc
	// says why that is most of the idle RSS).
	if err := memtrim.Release(); err != nil {
		log.Debug("could not return memory to the kernel", "err", err)
	}
	if err := u.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("updater stopped", "err", err)
		return 1
	}
	return 0
}
