package telemetry

import (
	"errors"
	"fmt"
	"time"

	"github.com/getsentry/sentry-go"
)

// SentryOptions configure NewSentry.
type SentryOptions struct {
	DSN         string
	Environment string
	Release     string
	// Tags go on every event (pod id, version, distribution, arch).
	Tags     map[string]string
	Redactor *Redactor
	// Transport replaces the HTTP transport (tests); nil means the default.
	Transport sentry.Transport
}

// Sentry reports errors and panics. A nil or disabled *Sentry is valid and
// does nothing, so callers never branch on whether a DSN was configured.
type Sentry struct {
	hub      *sentry.Hub
	redactor *Redactor
}

// NewSentry starts a client for o.DSN; an empty DSN returns a disabled Sentry.
func NewSentry(o SentryOptions) (*Sentry, error) {
	if o.DSN == "" {
		return &Sentry{}, nil
	}
	o.Redactor.AddDSN(o.DSN)
	s := &Sentry{redactor: o.Redactor}
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:              o.DSN,
		Environment:      o.Environment,
		Release:          o.Release,
		AttachStacktrace: true,
		Transport:        o.Transport,
		BeforeSend: func(e *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			return s.scrub(e)
		},
	})
	if err != nil {
		// The DSN is a secret: describe the problem without echoing it.
		return nil, errors.New("sentry: invalid DSN")
	}
	scope := sentry.NewScope()
	for k, v := range o.Tags {
		scope.SetTag(k, v)
	}
	s.hub = sentry.NewHub(client, scope)
	return s, nil
}

// Enabled reports whether events are sent anywhere.
func (s *Sentry) Enabled() bool { return s != nil && s.hub != nil }

// SetTag adds a tag to every later event (the pod id once registered).
func (s *Sentry) SetTag(key, value string) {
	if !s.Enabled() {
		return
	}
	s.hub.Scope().SetTag(key, value)
}

// Capture sends one error event. err may be nil (a message-only event).
func (s *Sentry) Capture(msg string, err error, extra map[string]any) {
	if !s.Enabled() {
		return
	}
	s.hub.WithScope(func(scope *sentry.Scope) {
		if len(extra) > 0 {
			scope.SetContext("details", extra)
		}
		if err != nil {
			s.hub.CaptureException(fmt.Errorf("%s: %w", msg, err))
			return
		}
		scope.SetLevel(sentry.LevelError)
		s.hub.CaptureMessage(msg)
	})
}

// RepanicAfterReport is deferred at the top of every goroutine: a panic is
// captured, flushed (the process is about to die) and then re-raised so the
// crash stays a crash and the container restarts.
func (s *Sentry) RepanicAfterReport() {
	if r := recover(); r != nil {
		if s.Enabled() {
			s.hub.Recover(r)
			s.hub.Flush(2 * time.Second)
		}
		panic(r)
	}
}

// Flush waits up to timeout for queued events to be sent.
func (s *Sentry) Flush(timeout time.Duration) bool {
	if !s.Enabled() {
		return true
	}
	return s.hub.Flush(timeout)
}

// scrub removes every known secret from the event and drops the parts that
// could carry ones we do not know about (HTTP requests, user).
func (s *Sentry) scrub(e *sentry.Event) *sentry.Event {
	r := s.redactor
	e.Message = r.String(e.Message)
	e.Request = nil
	e.User = sentry.User{}
	for i := range e.Exception {
		e.Exception[i].Value = r.String(e.Exception[i].Value)
	}
	for _, b := range e.Breadcrumbs {
		b.Message = r.String(b.Message)
		for k, v := range b.Data {
			b.Data[k] = redactAny(r, v)
		}
	}
	for k, v := range e.Tags {
		e.Tags[k] = r.String(v)
	}
	for _, c := range e.Contexts {
		for k, v := range c {
			c[k] = redactAny(r, v)
		}
	}
	return e
}

func redactAny(r *Redactor, v any) any {
	switch t := v.(type) {
	case string:
		return r.String(t)
	case error:
		return r.String(t.Error())
	case fmt.Stringer:
		return r.String(t.String())
	case map[string]any:
		for k, x := range t {
			t[k] = redactAny(r, x)
		}
		return t
	}
	return v
}
