package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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
	// StateDir keeps the event limits across restarts (SentryLimitsFile);
	// empty keeps them in memory only.
	StateDir string
	// Now is the limits' clock; nil is time.Now (tests run it fast).
	Now func() time.Time
}

// Sentry reports errors and panics. A nil or disabled *Sentry is valid and
// does nothing, so callers never branch on whether a DSN was configured.
// Events are deduplicated and capped per pod before they are sent (see
// FingerprintWindow).
type Sentry struct {
	hub      *sentry.Hub
	redactor *Redactor
	limits   *limiter
}

// NewSentry starts a client for o.DSN; an empty DSN returns a disabled Sentry.
func NewSentry(o SentryOptions) (*Sentry, error) {
	if o.DSN == "" {
		return &Sentry{}, nil
	}
	o.Redactor.AddDSN(o.DSN)
	s := &Sentry{redactor: o.Redactor, limits: newLimiter(o.StateDir, o.Now)}
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

// Capture sends one error event, unless the pod's limits hold it back
// (a repeat within its window, or over the daily cap): then it is only
// counted, and the next event of its fingerprint says how often it
// happened. err may be nil (a message-only event).
func (s *Sentry) Capture(msg string, err error, extra map[string]any) {
	if !s.Enabled() {
		return
	}
	fp, network := fingerprint(msg, err)
	ok, seen := s.limits.admit(fp, network)
	if !ok {
		return
	}
	details := make(map[string]any, len(extra)+len(seen))
	for k, v := range extra {
		details[k] = v
	}
	for k, v := range seen {
		details[k] = v
	}
	s.hub.WithScope(func(scope *sentry.Scope) {
		scope.SetContext("details", details)
		scope.SetFingerprint([]string{fp})
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
			// A crash loop restarts the process every few seconds: the
			// limits (kept on disk) make that one event, not one a restart.
			fp := panicFingerprint(r)
			if ok, seen := s.limits.admit(fp, false); ok {
				s.hub.WithScope(func(scope *sentry.Scope) {
					scope.SetContext("details", seen)
					scope.SetFingerprint([]string{fp})
					s.hub.Recover(r)
				})
				s.hub.Flush(2 * time.Second)
			}
		}
		panic(r)
	}
}

// Stats says how many events the process offered, sent and held back.
func (s *Sentry) Stats() SentryStats {
	if !s.Enabled() {
		return SentryStats{}
	}
	return s.limits.snapshot()
}

// Flush waits up to timeout for queued events to be sent.
func (s *Sentry) Flush(timeout time.Duration) bool {
	if !s.Enabled() {
		return true
	}
	return s.hub.Flush(timeout)
}

// scrub removes every known secret from the event and drops the parts that
// could carry ones we do not know about (HTTP requests, user). Every other
// string the event holds is redacted, wherever it sits — message,
// exception type and value, stack frames (their variables and source
// lines), threads, breadcrumbs, tags, contexts (extra data included), map
// keys as well as values — by walking the event rather than listing its
// fields, so that a field the SDK adds later is covered too.
func (s *Sentry) scrub(e *sentry.Event) *sentry.Event {
	e.Request = nil
	e.User = sentry.User{}
	w := &scrubber{r: s.redactor, seen: map[walked]bool{}}
	w.value(reflect.ValueOf(e).Elem(), 0)
	return e
}

// scrubber redacts every string reachable from a value through exported
// fields, pointers, slices, arrays, maps (keys and values) and interfaces.
type scrubber struct {
	r    *Redactor
	seen map[walked]bool // pointers and maps already walked (cycles)
	// changes counts the values replaced so far. Parts of an event can be
	// shared with earlier events still being encoded by the transport
	// (the SDK's context maps): a map entry or an interface is written
	// back only when something under it changed, so scrubbing a clean
	// event writes nothing that is shared.
	changes int
}

// walked names a pointer or map by type and address: a struct and its
// first field share an address, and walking one is not walking the other.
type walked struct {
	t reflect.Type
	p uintptr
}

// maxScrubDepth bounds the walk; whatever lies deeper is dropped rather
// than sent unexamined.
const maxScrubDepth = 64

// value scrubs v in place; v must be settable for its strings to change.
func (w *scrubber) value(v reflect.Value, depth int) {
	if depth > maxScrubDepth {
		if v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
			w.changes++
		}
		return
	}
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			if s := w.r.String(v.String()); s != v.String() {
				v.SetString(s)
				w.changes++
			}
		}
	case reflect.Pointer:
		k := walked{v.Type(), v.Pointer()}
		if v.IsNil() || w.seen[k] {
			return
		}
		w.seen[k] = true
		w.value(v.Elem(), depth+1)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				w.value(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if b := v.Bytes(); v.CanSet() && w.r.String(string(b)) != string(b) {
				v.SetBytes([]byte(w.r.String(string(b))))
				w.changes++
			}
			return
		}
		for i := range v.Len() {
			w.value(v.Index(i), depth+1)
		}
	case reflect.Array:
		for i := range v.Len() {
			w.value(v.Index(i), depth+1)
		}
	case reflect.Map:
		k := walked{v.Type(), v.Pointer()}
		if v.IsNil() || w.seen[k] {
			return
		}
		w.seen[k] = true
		for _, k := range v.MapKeys() {
			before := w.changes
			val := reflect.New(v.Type().Elem()).Elem()
			val.Set(v.MapIndex(k))
			w.value(val, depth+1)
			nk := reflect.New(k.Type()).Elem()
			nk.Set(k)
			w.value(nk, depth+1)
			if w.changes == before {
				continue
			}
			if !nk.Equal(k) {
				v.SetMapIndex(k, reflect.Value{})
			}
			v.SetMapIndex(nk, val)
		}
	case reflect.Interface:
		if v.IsNil() || !v.CanSet() {
			return
		}
		before := w.changes
		if c := w.any(v.Elem(), depth+1); w.changes != before {
			v.Set(c)
		}
	}
}

// any returns x with every secret removed, as a value of x's type where it
// can: an error or a fmt.Stringer becomes its (redacted) text, a value
// with its own JSON form is replaced by that form, decoded and scrubbed
// (what reaches Sentry is that form anyway), anything else is copied and
// walked.
func (w *scrubber) any(x reflect.Value, depth int) reflect.Value {
	if x.Kind() == reflect.Pointer && x.IsNil() {
		return x // no text to call for, nothing to redact
	}
	switch t := x.Interface().(type) {
	case string:
		r := w.r.String(t)
		if r != t {
			w.changes++
		}
		return reflect.ValueOf(r)
	case error:
		w.changes++ // replaced by its text
		return reflect.ValueOf(w.r.String(t.Error()))
	case json.Marshaler:
		w.changes++ // replaced by its JSON form
		b, err := json.Marshal(t)
		if err != nil {
			return reflect.ValueOf(w.r.String(fmt.Sprint(t)))
		}
		var decoded any
		if err := json.Unmarshal(b, &decoded); err != nil || decoded == nil {
			return reflect.ValueOf(&decoded).Elem()
		}
		c := reflect.ValueOf(&decoded).Elem()
		w.value(c, depth)
		return c.Elem()
	case fmt.Stringer:
		w.changes++ // replaced by its text
		return reflect.ValueOf(w.r.String(t.String()))
	}
	c := reflect.New(x.Type()).Elem()
	c.Set(x)
	w.value(c, depth)
	return c
}
