package radar

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/httpclient"
)

// Operation names carried by StatusError.Op.
const (
	OpRegister = "register"
	OpStatus   = "status"
	OpUpload   = "upload"
)

// maxErrorBody bounds how much of an error answer is kept for logs.
const maxErrorBody = 512

// StatusError is an answer with a status the operation does not accept.
type StatusError struct {
	Op   string
	Code int
	// Body is the start of the answer, truncated and with the pod secret
	// removed, for logs and reports.
	Body string
	// RetryAfter is the wait the answer asked for with Retry-After on a 429
	// or 503 (backoff.RetryAfter: capped, measured on the server's clock);
	// 0 when it gave none or the status is another.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("%s: unexpected HTTP status %d", e.Op, e.Code)
	}
	return fmt.Sprintf("%s: unexpected HTTP status %d: %s", e.Op, e.Code, e.Body)
}

// newStatusError keeps the start of body with every secret removed (the
// pod secret, a registration token): a confused proxy or service may echo
// the request.
func newStatusError(op string, code int, body []byte, secrets ...string) *StatusError {
	s := string(body)
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	if len(s) > maxErrorBody {
		s = s[:maxErrorBody] + "…"
	}
	return &StatusError{Op: op, Code: code, Body: strings.TrimSpace(s)}
}

// responseError marks a success status whose body could not be used: the
// service (or something in front of it) misbehaved.
type responseError struct {
	op  string
	err error
}

func (e *responseError) Error() string { return e.op + ": bad response: " + e.err.Error() }
func (e *responseError) Unwrap() error { return e.err }

// Class is what a caller decides on after a failed call.
type Class string

const (
	// ClassNone is the class of a nil error.
	ClassNone Class = ""
	// ClassNetwork: the service was not reached or the exchange broke
	// (dial, DNS, timeout, reset, cancelled). Retry with backoff.
	ClassNetwork Class = "network"
	// ClassServer: the service answered 5xx or garbage. Retry with backoff.
	ClassServer Class = "server"
	// ClassAuth: the credentials were refused (401/403, and 404 on upload,
	// the service's answer to a wrong client_secret). Keep data, report,
	// retry slowly.
	ClassAuth Class = "auth"
	// ClassRejected: any other 3xx/4xx, e.g. 302 when Accept is wrong: the
	// request itself is wrong; retrying the same request will not help.
	ClassRejected Class = "rejected"
	// ClassThrottled: 429, the service (or a proxy in front of it) asks the
	// pod to slow down. Not a failure of the pod or the service: retry
	// after the Retry-After it gave (RetryAfterOf), never sooner than the
	// backoff, and never report it as an error.
	ClassThrottled Class = "throttled"
)

// Retryable reports whether repeating the same request may succeed.
func (c Class) Retryable() bool {
	return c == ClassNetwork || c == ClassServer || c == ClassAuth || c == ClassThrottled
}

// RetryAfterOf returns the wait a failed call's answer asked for (429 or
// 503 with Retry-After, to an HTTP call or the channel's upgrade), or 0.
func RetryAfterOf(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	var ue *UpgradeError
	if errors.As(err, &ue) {
		return ue.RetryAfter
	}
	return 0
}

// honoursRetryAfter says which answers' Retry-After the pod obeys: the two
// that mean "not now" (RFC 9110 §15.6.4, RFC 6585 §4).
func honoursRetryAfter(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
}

// Classify sorts an error from Client into a Class.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch {
		case se.Code == http.StatusTooManyRequests:
			return ClassThrottled
		case se.Code >= 500:
			return ClassServer
		case se.Code == 401 || se.Code == 403:
			return ClassAuth
		case se.Code == 404 && se.Op == OpUpload:
			return ClassAuth
		default:
			return ClassRejected
		}
	}
	var re *responseError
	if errors.As(err, &re) || errors.Is(err, httpclient.ErrTooLarge) {
		return ClassServer
	}
	// Everything else comes from the transport (dial, DNS, TLS, proxy,
	// timeout, reset, cancellation): the service was not reached.
	return ClassNetwork
}
