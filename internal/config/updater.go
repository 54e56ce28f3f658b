package config

import (
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// Updater defaults.
const (
	DefaultCRLURL     = "https://storage.googleapis.com/radar.exactlylabs.com/rootCRL.crl.pem"
	DefaultAgentImage = "ghcr.io/radarpod/radar-agent"
	DefaultRootCAFile = "/etc/radar/root-ca.pem"
	// DefaultUpdaterStateSubdir is where RADAR_UPDATER_STATE_DIR defaults
	// to inside RADAR_DATA_DIR, so a plain `docker run` with one volume
	// still works. Compose mounts a volume of the updater's own there.
	DefaultUpdaterStateSubdir = "updater-state"
)

// Updater is the radar-updater configuration.
type Updater struct {
	DataDir           string        `env:"RADAR_DATA_DIR" envDefault:"/data" help:"Shared volume with the agent: update request, status and test lock files, the updater's heartbeat."`
	StateDir          string        `env:"RADAR_UPDATER_STATE_DIR" help:"The updater's private state: replacement journal, CRL cache and highest CRL number seen. Default: updater-state inside RADAR_DATA_DIR; compose mounts a volume only the updater sees there."`
	AgentContainer    string        `env:"RADAR_AGENT_CONTAINER" envDefault:"radar-agent" help:"Name of the agent container the updater manages (it must carry the agent label)."`
	AgentImage        string        `env:"RADAR_AGENT_IMAGE" envDefault:"ghcr.io/radarpod/radar-agent" help:"Agent image repository; an announced version is its tag."`
	CRLURL            string        `env:"RADAR_CRL_URL" envDefault:"https://storage.googleapis.com/radar.exactlylabs.com/rootCRL.crl.pem" help:"HTTPS URL of the release CRL (PEM, signed by the root CA)."`
	RootCAFile        string        `env:"RADAR_ROOT_CA_FILE" envDefault:"/etc/radar/root-ca.pem" help:"Pinned root CA (PEM) that image signatures and the CRL must chain to; baked into the updater image."`
	HealthTimeout     time.Duration `env:"RADAR_HEALTH_TIMEOUT" envDefault:"90s" help:"How long a new agent container has to become healthy before rollback."`
	TestTimeout       time.Duration `env:"RADAR_TEST_TIMEOUT" envDefault:"2m" help:"(shared) The updater waits up to twice this for a running test to end."`
	LogLevel          string        `env:"RADAR_LOG_LEVEL" envDefault:"info" help:"(shared) debug, info, warn or error."`
	LogFormat         string        `env:"RADAR_LOG_FORMAT" envDefault:"json" help:"(shared) json or text."`
	SentryDSN         string        `env:"SENTRY_DSN" secret:"true" help:"(shared) Sentry DSN; empty = off."`
	SentryEnvironment string        `env:"SENTRY_ENVIRONMENT" help:"(shared) Sentry environment tag."`

	Set map[string]bool `env:"-"`
}

// Level is the parsed log level (valid after LoadUpdater).
func (c Updater) Level() slog.Level { return mustLevel(c.LogLevel) }

// LoadUpdater reads and validates the updater configuration from environ.
func LoadUpdater(environ map[string]string) (Updater, error) {
	var c Updater
	set, errs := load(&c, environ)
	c.Set = set
	if c.DataDir == "" {
		errs = append(errs, &Error{Var: "RADAR_DATA_DIR", Problem: "must not be empty", Allowed: "a directory path such as /data"})
	}
	if c.StateDir == "" && c.DataDir != "" {
		c.StateDir = filepath.Join(c.DataDir, DefaultUpdaterStateSubdir)
	}
	if c.DataDir != "" && filepath.Clean(c.StateDir) == filepath.Clean(c.DataDir) {
		// The state would sit among the files the agent writes.
		errs = append(errs, &Error{Var: "RADAR_UPDATER_STATE_DIR", Value: c.StateDir, Problem: "must not be RADAR_DATA_DIR itself",
			Allowed: "a directory of its own, e.g. /data/updater-state (the default) or a volume only the updater mounts"})
	}
	if strings.TrimSpace(c.AgentContainer) == "" {
		errs = append(errs, &Error{Var: "RADAR_AGENT_CONTAINER", Problem: "must not be empty", Allowed: "a container name such as radar-agent"})
	}
	if named, err := reference.ParseNormalizedNamed(c.AgentImage); err != nil || !reference.IsNameOnly(named) {
		errs = append(errs, &Error{Var: "RADAR_AGENT_IMAGE", Value: c.AgentImage, Problem: "not an image repository", Allowed: "a repository without tag or digest, e.g. ghcr.io/radarpod/radar-agent"})
	}
	checkURL(&errs, "RADAR_CRL_URL", c.CRLURL, false, "https")
	if c.RootCAFile == "" {
		errs = append(errs, &Error{Var: "RADAR_ROOT_CA_FILE", Problem: "must not be empty", Allowed: "a readable PEM file"})
	} else {
		checkReadableFile(&errs, "RADAR_ROOT_CA_FILE", c.RootCAFile)
	}
	checkPositiveDuration(&errs, "RADAR_HEALTH_TIMEOUT", c.HealthTimeout, time.Second)
	checkPositiveDuration(&errs, "RADAR_TEST_TIMEOUT", c.TestTimeout, 5*time.Second)
	checkLog(&errs, c.LogLevel, c.LogFormat)
	checkDSN(&errs, c.SentryDSN)
	return c, errs.orNil()
}
