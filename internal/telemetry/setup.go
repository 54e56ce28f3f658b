package telemetry

import (
	"io"
	"log/slog"
	"time"

	"github.com/radarpod/radarpod/internal/buildinfo"
)

// Process is what every Radar Pod daemon sets up first: a redactor holding
// its known secrets, Sentry when a DSN is configured (tagged with the
// component and build), and the logger that reports errors to it.
type Process struct {
	Log      *slog.Logger
	Sentry   *Sentry
	Redactor *Redactor
}

// ProcessOptions configure Setup.
type ProcessOptions struct {
	Component   string // "radar-agent", "radar-updater"
	DSN         string
	Environment string
	Level       slog.Level
	Format      string
	// Secrets are redacted from every log line and event from the start.
	Secrets []string
	// StateDir keeps the Sentry event limits across restarts (the data
	// dir); empty keeps them in memory only.
	StateDir string
	// Now is the Sentry limits' clock; nil is time.Now.
	Now func() time.Time
}

// Setup builds a Process writing logs to w. The error is about the DSN and
// never contains it.
func Setup(w io.Writer, o ProcessOptions) (*Process, error) {
	redactor := &Redactor{}
	redactor.Add(o.Secrets...)
	sentry, err := NewSentry(SentryOptions{
		DSN: o.DSN, Environment: o.Environment, Release: o.Component + "@" + buildinfo.Version,
		Redactor: redactor, StateDir: o.StateDir, Now: o.Now,
		Tags: map[string]string{
			"component": o.Component, "version": buildinfo.Version,
			"distribution": buildinfo.Distribution(), "arch": buildinfo.Arch(),
		},
	})
	if err != nil {
		return nil, err
	}
	log := NewLogger(w, LogOptions{Level: o.Level, Format: o.Format, Redactor: redactor, Sentry: sentry})
	return &Process{Log: log, Sentry: sentry, Redactor: redactor}, nil
}
