package config

import (
	"fmt"
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
	// DefaultUpdaterStateDir is RADAR_UPDATER_STATE_DIR's default: outside
	// the data volume the agent owns. Compose mounts a volume only the
	// updater sees there; the updater image declares it a volume, so a
	// plain `docker run` gets an anonymous one.
	DefaultUpdaterStateDir = "/var/lib/radar-updater"
	// LegacyUpdaterStateSubdir is where older updaters kept their state,
	// inside RADAR_DATA_DIR: within the agent's reach (both run as the same
	// uid, and the agent could rmdir the mount point compose put there).
	// The updater takes what it can trust from there on its first start.
	LegacyUpdaterStateSubdir = "updater-state"
)

// Updater is the radar-updater configuration.
type Updater struct {
	DataDir           string        `env:"RADAR_DATA_DIR" envDefault:"/data" help:"Shared volume with the agent: update request, status and test lock files."`
	StateDir          string        `env:"RADAR_UPDATER_STATE_DIR" envDefault:"/var/lib/radar-updater" help:"The updater's private state (replacement journal, CRL cache and highest CRL number seen, heartbeat), outside RADAR_DATA_DIR; compose mounts a volume only the updater sees there."`
	AgentContainer    string        `env:"RADAR_AGENT_CONTAINER" envDefault:"radar-agent" help:"Name of the agent container the updater manages (it must carry the agent label)."`
	AgentImage        string        `env:"RADAR_AGENT_IMAGE" envDefault:"ghcr.io/radarpod/radar-agent" help:"Agent image repository; an announced version is its tag."`
	CRLURL            string        `env:"RADAR_CRL_URL" envDefault:"https://storage.googleapis.com/radar.exactlylabs.com/rootCRL.crl.pem" help:"HTTPS URL of the release CRL (PEM, signed by the root CA)."`
	RootCAFile        string        `env:"RADAR_ROOT_CA_FILE" envDefault:"/etc/radar/root-ca.pem" help:"Pinned root CA (PEM) that image signatures and the CRL must chain to; baked into the updater image."`
	HealthTimeout     time.Duration `env:"RADAR_HEALTH_TIMEOUT" envDefault:"90s" min:"1s" max:"1h" help:"How long a new agent container has to become healthy before rollback."`
	TestTimeout       time.Duration `env:"RADAR_TEST_TIMEOUT" envDefault:"2m" min:"5s" max:"30m" help:"(shared) The updater waits up to twice this for a running test to end."`
	LogLevel          string        `env:"RADAR_LOG_LEVEL" envDefault:"info" help:"(shared) debug, info, warn or error."`
	LogFormat         string        `env:"RADAR_LOG_FORMAT" envDefault:"auto" help:"(shared) auto, json or text."`
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
	if c.DataDir != "" && c.StateDir != "" {
		checkStateOutsideData(&errs, c.StateDir, c.DataDir)
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
	checkLog(&errs, c.LogLevel, c.LogFormat)
	checkDSN(&errs, c.SentryDSN)
	return c, errs.orNil()
}

// checkStateOutsideData refuses a state directory that is the data
// directory, lies inside it or contains it, comparing the paths as the
// kernel resolves them (cleaned, absolute, symbolic links followed as far
// as they exist). Inside the data directory the agent, which runs as the
// same uid, could rewrite the updater's journal, CRL cache and highest CRL
// number, or rmdir a mount point there and put its own directory in its
// place; containing it, the state's own files would be in the agent's
// volume.
func checkStateOutsideData(errs *Errors, stateDir, dataDir string) {
	state, data := resolvePath(stateDir), resolvePath(dataDir)
	var problem string
	switch {
	case state == data:
		problem = "must not be RADAR_DATA_DIR itself"
	case within(state, data):
		problem = "must not be inside RADAR_DATA_DIR (" + dataDir + "), which the agent can write"
	case within(data, state):
		problem = "must not contain RADAR_DATA_DIR (" + dataDir + "), which the agent can write"
	default:
		return
	}
	if state != filepath.Clean(stateDir) || data != filepath.Clean(dataDir) {
		problem += fmt.Sprintf(" (resolved: %s and %s)", state, data)
	}
	*errs = append(*errs, &Error{Var: "RADAR_UPDATER_STATE_DIR", Value: stateDir, Problem: problem,
		Allowed: "a directory outside RADAR_DATA_DIR that only the updater mounts, e.g. " + DefaultUpdaterStateDir + " (the default)"})
}

// resolvePath makes p absolute and clean and resolves the symbolic links of
// its longest existing prefix (the rest does not exist yet, so it cannot
// be a link).
func resolvePath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether p lies strictly inside dir (both resolved).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}
