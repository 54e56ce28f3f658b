// Package speedtest owns what one speed-test run is: the target it runs on
// (an interface, or the default route), the result it produces (the raw file
// the pods service parses plus a typed summary), and the classified errors
// the agent records when a run fails. The runners live in the ndt7 and ookla
// subpackages; the agent declares the small interface it calls them through.
package speedtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Styles are the literal measurement[style] values the pods service expects.
const (
	StyleNDT7  = "NDT7"
	StyleOokla = "OOKLA"
)

// Target says where a test runs.
type Target struct {
	// Interface is the interface name reported with the result; "" means the
	// default route.
	Interface string
	// LocalAddr is the source address every connection of the test binds to,
	// so a pod with several uplinks measures the one it was asked about; nil
	// lets the OS choose (the default route).
	LocalAddr net.IP
}

// Result is one run of one runner.
type Result struct {
	Runner    string // runner name: "ndt7", "ookla"
	Style     string // measurement[style]: StyleNDT7 or StyleOokla
	Interface string // Target.Interface
	StartedAt time.Time
	// FinishedAt is when the runner stopped, successful or not.
	FinishedAt time.Time
	// Raw is exactly the file uploaded as measurement[result]: the service
	// parses it, so runners never re-encode what the tool produced.
	Raw []byte
	// Summary holds the figures the service will read out of Raw.
	Summary Summary
	// Server names the server measured against (a host name), "" when
	// the runner did not get that far.
	Server string
}

// Summary is the headline of a result.
type Summary struct {
	DownloadMbps float64
	UploadMbps   float64
	LatencyMs    float64
	// BytesSent and BytesReceived are what the test moved, as the tool
	// measured it (payload, not counting TCP/IP headers, a few percent
	// more on the wire): what a data budget counts. A failed test that
	// moved data still reports it.
	BytesSent, BytesReceived int64
}

// Bytes is the test's total traffic, both directions.
func (s Summary) Bytes() int64 { return s.BytesSent + s.BytesReceived }

// Class is why a run failed. Its string is the label of the failure metric
// and of local failure records, so the values are stable.
type Class string

// The failure classes. A caller decides on them: unavailable is permanent
// until the configuration or the image changes; everything else may succeed
// on the next run.
const (
	ClassTimeout     Class = "timeout"     // the run's deadline expired
	ClassCanceled    Class = "canceled"    // the run was cancelled (shutdown)
	ClassUnavailable Class = "unavailable" // the runner cannot run here (missing binary)
	ClassNetwork     Class = "network"     // dial, bind, TLS or transfer failed
	ClassLocate      Class = "locate"      // server discovery (M-Lab locate) failed
	ClassServer      Class = "server"      // the server refused or misbehaved
	ClassExitStatus  Class = "exit_status" // a tool exited non-zero
	ClassBadOutput   Class = "bad_output"  // a tool's output has no usable result
	ClassInternal    Class = "internal"    // a bug or a misconfiguration of the runner
)

// Error is a failed run.
type Error struct {
	Runner string
	Class  Class
	Err    error
	// Stderr is what a tool wrote on its standard error, bounded by the runner.
	Stderr string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s: %v", e.Runner, e.Class, e.Err)
	if s := firstLine(e.Stderr, 200); s != "" {
		msg += " (stderr: " + s + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf classifies err: the class of the first *Error in its chain, the
// context errors as timeout/canceled, anything else as internal; "" for nil.
func ClassOf(err error) Class {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Class
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	default:
		return ClassInternal
	}
}

// ContextError returns the classified error of a run whose context is done,
// or nil if ctx is still live. Runners check it first: once the deadline has
// passed, whatever else failed failed because of it.
func ContextError(ctx context.Context, runner string) *Error {
	switch err := ctx.Err(); {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Runner: runner, Class: ClassTimeout, Err: err}
	default:
		return &Error{Runner: runner, Class: ClassCanceled, Err: err}
	}
}

func firstLine(s string, max int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
