// Package localapi owns the agent's local test API: POST /api/v1/test on
// the agent's own endpoint (RADAR_LISTEN_ADDR), which runs a test now
// through the agent's queue and streams its progress and result as NDJSON;
// the wire form of those events (also what `radar-agent test --format
// json` prints); the client `radar-agent test` asks the agent with; and
// the hint that tells a person what to do about a failed test.
package localapi

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// Path is the API's route.
const Path = "/api/v1/test"

// Request is the POST body (JSON); every field is optional.
type Request struct {
	// Runner is "ndt7" or "ookla"; empty runs every runner of RADAR_TESTS.
	Runner string `json:"runner,omitempty"`
	// Interface is the interface to test; empty is the default route.
	Interface string `json:"interface,omitempty"`
}

// The event types: progress events (speedtest.Progress), then one result
// or one error event.
const (
	TypeProgress = speedtest.ProgressType
	TypeResult   = "result"
	TypeError    = "error"
)

// Sources of a result event.
const (
	SourceAgent     = "agent"      // the running agent, through its queue
	SourceInProcess = "in-process" // the CLI itself; nothing stored
)

// Result is the result event: every test of the request, in the order run.
// OK is false when any of them failed.
type Result struct {
	Type   string `json:"type"`
	OK     bool   `json:"ok"`
	Source string `json:"source"`
	Tests  []Test `json:"tests"`
}

// Test is one runner on one target. The figures are absent for a failed
// test, which has error_class, error and hint instead.
type Test struct {
	Runner    string `json:"runner"`
	Interface string `json:"interface"`
	// Time is when the test started; absent when the pod's clock was not
	// known to be right (clock_synced false in results.jsonl).
	Time         *time.Time `json:"time,omitempty"`
	Server       string     `json:"server,omitempty"`
	DownloadMbps *float64   `json:"download_mbps,omitempty"`
	UploadMbps   *float64   `json:"upload_mbps,omitempty"`
	// LatencyMs is the minimum RTT for ndt7, the ping latency for Ookla.
	LatencyMs     *float64 `json:"latency_ms,omitempty"`
	BytesSent     int64    `json:"bytes_sent"`
	BytesReceived int64    `json:"bytes_received"`
	DurationS     float64  `json:"duration_s"`
	ErrorClass    string   `json:"error_class,omitempty"`
	Error         string   `json:"error,omitempty"`
	Hint          string   `json:"hint,omitempty"`
	// OutboxID is the result's record in the outbox (connected agents):
	// it is uploaded like any requested test.
	OutboxID string `json:"outbox_id,omitempty"`
}

// Failed reports whether the test failed.
func (t Test) Failed() bool { return t.ErrorClass != "" }

// ErrorEvent is the error event: no test result could be produced (the
// request was refused, the agent is stopping).
type ErrorEvent struct {
	Type  string `json:"type"`
	Class string `json:"class"`
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"`
}

// The classes of an error event beyond speedtest's.
const (
	ClassBadRequest   = "bad_request"  // unknown runner, bad interface name or body
	ClassUnauthorized = "unauthorized" // RADAR_STATUS_TOKEN set, no or wrong token
	ClassForbidden    = "forbidden"    // a cross-site request
	ClassStopping     = "stopping"     // the agent stopped before the run
	ClassBusy         = "busy"         // too many callers waiting already
	ClassAgent        = "agent"        // the agent broke off the stream
)

// Error is an error event received as an error.
type Error struct{ Event ErrorEvent }

func (e *Error) Error() string { return e.Event.Class + ": " + e.Event.Error }

// NewResult turns the results of RunNow or agent.RunInProcess into the
// result event.
func NewResult(source string, results []agent.LocalResult) Result {
	r := Result{Type: TypeResult, OK: true, Source: source, Tests: make([]Test, 0, len(results))}
	for _, lr := range results {
		t := TestOf(lr)
		if t.Failed() {
			r.OK = false
		}
		r.Tests = append(r.Tests, t)
	}
	return r
}

// TestOf is one test's wire form.
func TestOf(lr agent.LocalResult) Test {
	e := lr.Entry
	t := Test{
		Runner: e.Runner, Interface: e.Interface, Server: lr.Server,
		DownloadMbps: e.DownloadMbps, UploadMbps: e.UploadMbps, LatencyMs: e.LatencyMs,
		BytesSent: lr.BytesSent, BytesReceived: lr.BytesReceived,
		DurationS: e.DurationSeconds, OutboxID: e.OutboxID,
	}
	// The agent leaves Time zero unless its clock vouched for it.
	if !e.Time.IsZero() {
		at := e.Time
		t.Time = &at
	}
	if lr.Err != nil || e.ErrorClass != "" {
		t.ErrorClass, t.Error = e.ErrorClass, e.Error
		if t.ErrorClass == "" {
			t.ErrorClass = string(speedtest.ClassOf(lr.Err))
		}
		t.Hint = Hint(lr.Err, speedtest.Class(t.ErrorClass))
		t.DownloadMbps, t.UploadMbps, t.LatencyMs = nil, nil, nil
	}
	return t
}

// checkNetwork is the command that finds which connection is blocked.
const checkNetwork = "`radar-agent check-network` shows which connection is blocked"

// Hint says what a person can do about a failed test of class (err, if
// known, refines it: a DNS failure names the host).
func Hint(err error, class speedtest.Class) string {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.Name != "" {
		return "DNS failed for " + dns.Name + ": " + checkNetwork
	}
	switch class {
	case speedtest.ClassLocate:
		return "M-Lab locate (locate.measurementlab.net) found no server: " + checkNetwork
	case speedtest.ClassNetwork:
		if err != nil && strings.Contains(err.Error(), "not found") && strings.Contains(err.Error(), "interface") {
			return "no such interface on the pod: `ip -br addr` lists them"
		}
		return "the connection to the test server failed: " + checkNetwork
	case speedtest.ClassTimeout:
		return "the test did not finish within RADAR_TEST_TIMEOUT (a very slow line, or a firewall dropping the test's traffic): " + checkNetwork
	case speedtest.ClassCanceled:
		return "the test was cancelled (the agent stopped, or the command was interrupted)"
	case speedtest.ClassUnavailable:
		return "the Ookla CLI is not installed here (RADAR_OOKLA_BIN; see deploy/docker/ookla/README.md); `--runner ndt7` runs without it"
	case speedtest.ClassServer:
		return "the test server refused or misbehaved; try again later"
	case speedtest.ClassExitStatus:
		return "the Ookla CLI failed (its message is in the error): " + checkNetwork
	case speedtest.ClassBadOutput:
		return "the Ookla CLI printed no usable result (a captive portal or a proxy in the way?)"
	case speedtest.ClassInternal:
		return "a bug or a configuration problem of the runner; the agent's log has the details"
	}
	return ""
}

// errorEvent classifies an error of RunNow (or of the in-process run) that
// produced no result.
func errorEvent(err error) ErrorEvent {
	ev := ErrorEvent{Type: TypeError, Error: err.Error()}
	var se *speedtest.Error
	switch {
	case errors.Is(err, agent.ErrBadRequest):
		ev.Class, ev.Hint = ClassBadRequest, "`radar-agent test --help` lists the runners and options"
	case errors.Is(err, agent.ErrStopped):
		ev.Class, ev.Hint = ClassStopping, "the agent is restarting or stopping; try again in a minute"
	case errors.As(err, &se):
		ev.Class = string(se.Class)
		ev.Hint = Hint(err, se.Class)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		ev.Class = string(speedtest.ClassOf(err))
		ev.Hint = Hint(err, speedtest.ClassOf(err))
	default:
		ev.Class = string(speedtest.ClassInternal)
		ev.Hint = Hint(err, speedtest.ClassInternal)
	}
	return ev
}

// ErrorEventOf is the error event for err (an in-process run's failure).
func ErrorEventOf(err error) ErrorEvent { return errorEvent(err) }
