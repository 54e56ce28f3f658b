package config

import (
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// DefaultServerURL is the production pods service.
const DefaultServerURL = "https://radar.exactlylabs.com"

// Runner names accepted in RADAR_TESTS.
var Runners = []string{"ndt7", "ookla"}

// The range of RADAR_TESTS_PER_DAY. The upper bound is one run per 15
// minutes, the standalone schedule's shortest gap. The lower bound, one run
// in 100 days, keeps the schedule's mean (24h / tests per day) and its
// 2 × mean cap far inside time.Duration's ~292 years: a smaller value
// (1e-300 parses fine) would overflow them into a negative gap and run
// tests back to back. Nobody needs a pod that measures less often.
const (
	MinTestsPerDay = 0.01
	MaxTestsPerDay = 96
)

// Agent is the radar-agent configuration. The `help` tags feed the README table.
type Agent struct {
	// ServerURL and ListenAddr use `default`, not envDefault: an explicitly
	// empty value means standalone mode / no endpoint (see load).
	ServerURL          string        `env:"RADAR_SERVER_URL" default:"https://radar.exactlylabs.com" help:"Pods service base URL; empty runs the pod standalone (no service, local schedule, results.jsonl)."`
	RegistrationToken  string        `env:"RADAR_REGISTRATION_TOKEN" secret:"true" help:"Optional registration token (or RADAR_REGISTRATION_TOKEN_FILE)."`
	PodName            string        `env:"RADAR_POD_NAME" help:"Optional pod name sent at registration."`
	RegisterLabel      string        `env:"RADAR_REGISTER_LABEL" help:"Optional label sent at registration."`
	DataDir            string        `env:"RADAR_DATA_DIR" envDefault:"/data" help:"Identity, outbox, results and the files shared with the updater."`
	PingInterval       time.Duration `env:"RADAR_PING_INTERVAL" envDefault:"15s" min:"1s" max:"1h" help:"Fallback heartbeat period while the live channel is down."`
	ReconnectMax       time.Duration `env:"RADAR_RECONNECT_MAX" envDefault:"8m" min:"1s" max:"1h" help:"Cap of the live channel's reconnect backoff (full jitter), and the window over which a fleet whose channels dropped together comes back; see docs/fleet.md for the value per fleet size."`
	Tests              []string      `env:"RADAR_TESTS" envDefault:"ndt7,ookla" help:"Runners to use, in order: ndt7, ookla."`
	NDT7Server         string        `env:"RADAR_NDT7_SERVER" help:"host:port of a fixed ndt7 server; empty uses M-Lab locate."`
	NDT7Scheme         string        `env:"RADAR_NDT7_SCHEME" envDefault:"auto" help:"auto (wss when the CPU has AES in hardware, else ws), wss or ws."`
	NDT7CAFile         string        `env:"RADAR_NDT7_CA_FILE" help:"Extra PEM CA bundle for wss to private ndt7 servers."`
	OoklaBin           string        `env:"RADAR_OOKLA_BIN" envDefault:"speedtest" help:"Ookla CLI path or name on PATH; missing binary = Ookla runner unavailable."`
	TestTimeout        time.Duration `env:"RADAR_TEST_TIMEOUT" envDefault:"2m" min:"5s" max:"30m" help:"Hard limit for one runner on one interface."`
	TestsPerDay        float64       `env:"RADAR_TESTS_PER_DAY" envDefault:"4" help:"Standalone schedule: mean test runs per day, from 0.01 (one in 100 days) to 96 (exponential gaps clamped to [15m, 2x mean])."`
	ListenAddr         string        `env:"RADAR_LISTEN_ADDR" default:"127.0.0.1:9100" help:"/healthz and /metrics endpoint; empty disables it (and the Docker healthcheck)."`
	StatusToken        string        `env:"RADAR_STATUS_TOKEN" secret:"true" help:"Access token the status page's actions (the test button) ask for; needed to use them from another machine. Viewing never needs it."`
	LogLevel           string        `env:"RADAR_LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error."`
	LogFormat          string        `env:"RADAR_LOG_FORMAT" envDefault:"auto" help:"auto (text when stderr is a terminal, else JSON), json (for log shippers) or text."`
	OutboxMaxBytes     ByteSize      `env:"RADAR_OUTBOX_MAX_BYTES" envDefault:"67108864" min:"64KiB" max:"1GiB" help:"Bound on results waiting for upload; oldest are evicted (and counted) beyond it."`
	DataBudget         ByteSize      `env:"RADAR_DATA_BUDGET" envDefault:"0" zero:"off" min:"1MB" max:"1000TB" help:"Data the tests may move per budget period (a month), e.g. 50GB or 500MiB; once the next test would exceed it, scheduled tests are skipped (requested ones still run). 0 or empty = no budget."`
	DataBudgetResetDay int           `env:"RADAR_DATA_BUDGET_RESET_DAY" envDefault:"1" min:"1" max:"28" help:"Day of the month (UTC) the data budget period starts."`
	SentryDSN          string        `env:"SENTRY_DSN" secret:"true" help:"Sentry DSN for error reports (or SENTRY_DSN_FILE); empty = off."`
	SentryEnvironment  string        `env:"SENTRY_ENVIRONMENT" help:"Sentry environment tag."`

	// AllowInsecureServer admits a plain-http RADAR_SERVER_URL to a host
	// that is not loopback (see checkServerScheme).
	AllowInsecureServer bool `env:"RADAR_ALLOW_INSECURE_SERVER" envDefault:"false" help:"true admits an http:// RADAR_SERVER_URL to a host that is not loopback (the pod secret then crosses the network in clear text); for development only."`

	// Set records which variables were given explicitly (for Print).
	Set map[string]bool `env:"-"`
}

// Standalone reports whether the agent runs without a pods service.
func (c Agent) Standalone() bool { return c.ServerURL == "" }

// Level is the parsed log level (valid after LoadAgent).
func (c Agent) Level() slog.Level { return mustLevel(c.LogLevel) }

// LoadAgent reads and validates the agent configuration from environ.
func LoadAgent(environ map[string]string) (Agent, error) {
	var c Agent
	set, errs := load(&c, environ)
	c.Set = set
	c.ServerURL = strings.TrimRight(c.ServerURL, "/")
	if c.ServerURL != "" {
		if u := checkURL(&errs, "RADAR_SERVER_URL", c.ServerURL, false, "https", "http"); u != nil {
			var extra []string
			if u.User != nil {
				extra = append(extra, "credentials")
			}
			if u.RawQuery != "" || u.ForceQuery {
				extra = append(extra, "a query")
			}
			if u.Fragment != "" {
				extra = append(extra, "a fragment")
			}
			if len(extra) > 0 {
				// The value is echoed with its userinfo and query hidden:
				// they are where a password or token would be.
				errs = append(errs, &Error{Var: "RADAR_SERVER_URL", Value: redactURL(c.ServerURL), Problem: "must not carry " + strings.Join(extra, ", "), Allowed: "a base URL such as https://radar.exactlylabs.com"})
			}
			checkServerScheme(&errs, c.ServerURL, u, c.AllowInsecureServer)
		}
	}
	if c.DataDir == "" {
		errs = append(errs, &Error{Var: "RADAR_DATA_DIR", Problem: "must not be empty", Allowed: "a directory path such as /data"})
	}
	c.Tests = normaliseList(c.Tests)
	if len(c.Tests) == 0 {
		errs = append(errs, &Error{Var: "RADAR_TESTS", Value: environ["RADAR_TESTS"], Problem: "no runner named", Allowed: "a comma-separated list of " + strings.Join(Runners, ", ")})
	}
	seen := map[string]bool{}
	for _, r := range c.Tests {
		if !contains(Runners, r) {
			errs = append(errs, &Error{Var: "RADAR_TESTS", Value: environ["RADAR_TESTS"], Problem: "unknown runner " + quote(r), Allowed: "a comma-separated list of " + strings.Join(Runners, ", ")})
		} else if seen[r] {
			errs = append(errs, &Error{Var: "RADAR_TESTS", Value: environ["RADAR_TESTS"], Problem: "runner " + quote(r) + " listed twice", Allowed: "each of " + strings.Join(Runners, ", ") + " at most once"})
		}
		seen[r] = true
	}
	checkHostPort(&errs, "RADAR_NDT7_SERVER", c.NDT7Server)
	checkOneOf(&errs, "RADAR_NDT7_SCHEME", c.NDT7Scheme, "auto", "wss", "ws")
	checkReadableFile(&errs, "RADAR_NDT7_CA_FILE", c.NDT7CAFile)
	if c.OoklaBin == "" {
		errs = append(errs, &Error{Var: "RADAR_OOKLA_BIN", Problem: "must not be empty", Allowed: "a path or a command name; leave unset for speedtest"})
	}
	// NaN fails every comparison, so the range is written as what is
	// accepted; ParseFloat also accepts "Inf" and "1e-300".
	if !(c.TestsPerDay >= MinTestsPerDay && c.TestsPerDay <= MaxTestsPerDay) {
		errs = append(errs, &Error{Var: "RADAR_TESTS_PER_DAY", Value: environ["RADAR_TESTS_PER_DAY"], Problem: "out of range",
			Allowed: "a number from 0.01 (one run in 100 days) to 96 (one every 15 minutes)"})
	}
	checkHostPort(&errs, "RADAR_LISTEN_ADDR", c.ListenAddr)
	checkLog(&errs, c.LogLevel, c.LogFormat)
	checkDSN(&errs, c.SentryDSN)
	return c, errs.orNil()
}

// checkServerScheme refuses plain http to anything but this machine unless
// the operator asked for it: over http the pod secret crosses the network
// in clear text three times over (the ClientToken header, the uploads'
// client_secret field and the Basic credentials of the ws:// channel
// upgrade), where anyone on the path can read it and become the pod.
func checkServerScheme(errs *Errors, raw string, u *url.URL, allowInsecure bool) {
	if allowInsecure || !insecureServer(u) {
		return
	}
	*errs = append(*errs, &Error{Var: "RADAR_SERVER_URL", Value: redactURL(raw),
		Problem: "plain http to a host that is not loopback would send the pod secret in clear text",
		Allowed: "an https URL; http only to a loopback host (127.0.0.0/8, ::1, localhost), " +
			"or with RADAR_ALLOW_INSECURE_SERVER=true for a development service elsewhere"})
}

// NeedsInsecureServerOptIn reports whether the agent refuses serverURL
// unless RADAR_ALLOW_INSECURE_SERVER=true: plain http to a host that is
// not loopback. Development tools use it to tell the operator.
func NeedsInsecureServerOptIn(serverURL string) bool {
	u, err := url.Parse(serverURL)
	return err == nil && insecureServer(u)
}

func insecureServer(u *url.URL) bool {
	return u.Scheme == "http" && !isLoopbackHost(u.Hostname())
}

// isLoopbackHost reports whether host (as url.Hostname returns it) names
// this machine by itself: an address in 127.0.0.0/8 or ::1, or the name
// localhost (RFC 6761). No lookup is made: any other name may resolve
// elsewhere tomorrow, or be answered by whoever is on the path.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkLog(errs *Errors, level, format string) {
	checkOneOf(errs, "RADAR_LOG_LEVEL", strings.ToLower(level), "debug", "info", "warn", "error")
	checkOneOf(errs, "RADAR_LOG_FORMAT", format, "auto", "json", "text")
}

func checkDSN(errs *Errors, dsn string) {
	if dsn == "" {
		return
	}
	u := checkURL(errs, "SENTRY_DSN", dsn, true, "https", "http")
	if u != nil && (u.User == nil || u.User.Username() == "" || strings.Trim(u.Path, "/") == "") {
		*errs = append(*errs, &Error{Var: "SENTRY_DSN", Secret: true, Problem: "not a Sentry DSN", Allowed: "https://<key>@<host>/<project id>"})
	}
}

func mustLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func normaliseList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quote(s string) string { return `"` + s + `"` }
