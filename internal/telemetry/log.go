// Package telemetry owns what the pod tells its operators: structured logs
// (log/slog), Sentry error reports, Prometheus metrics and the health
// endpoint Docker's HEALTHCHECK reads. Secrets never leave through any of them.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogOptions configure NewLogger.
type LogOptions struct {
	Level slog.Level
	// Format is "json", "text", or "auto" (also ""): see LogFormat.
	Format string
	// Redactor scrubs secrets from every message and string attribute.
	Redactor *Redactor
	// Sentry, when set, receives every record at level Error or above as an
	// event, so "logged" and "reported" are one call.
	Sentry *Sentry
}

// ParseLevel maps the RADAR_LOG_LEVEL words to slog levels.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q", s)
}

// LogFormat resolves RADAR_LOG_FORMAT for the writer the logs go to:
// "auto" (and "") is text when w is a terminal — a person reading
// `docker run -it`, `docker compose up` in the foreground with tty, a
// shell — and JSON otherwise: a container's stderr is a pipe to the log
// driver unless the container was given a TTY, and log shippers (balena,
// json-file readers, Loki) want one JSON object per line.
func LogFormat(format string, w io.Writer) string {
	switch format {
	case "json", "text":
		return format
	}
	if f, ok := w.(interface{ Fd() uintptr }); ok && isTerminal(f.Fd()) {
		return "text"
	}
	return "json"
}

// NewLogger builds the process logger.
func NewLogger(w io.Writer, o LogOptions) *slog.Logger {
	hopts := &slog.HandlerOptions{
		Level: o.Level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			// JSON would print a duration as integer nanoseconds; operators
			// read "1m30s".
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return redactAttr(o.Redactor, a)
		},
	}
	var h slog.Handler
	if LogFormat(o.Format, w) == "text" {
		h = slog.NewTextHandler(w, hopts)
	} else {
		h = slog.NewJSONHandler(w, hopts)
	}
	if o.Sentry.Enabled() {
		h = &sentryHandler{next: h, sentry: o.Sentry}
	}
	return slog.New(h)
}

func redactAttr(r *Redactor, a slog.Attr) slog.Attr {
	if r == nil {
		return a
	}
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(r.String(a.Value.String()))
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(r.String(err.Error()))
		} else if s, ok := a.Value.Any().(fmt.Stringer); ok {
			a.Value = slog.StringValue(r.String(s.String()))
		}
	}
	return a
}

// sentryHandler forwards error records to Sentry with their attributes.
type sentryHandler struct {
	next   slog.Handler
	sentry *Sentry
	attrs  []slog.Attr
	group  string
}

func (h *sentryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *sentryHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		extra := make(map[string]any, len(h.attrs)+r.NumAttrs())
		var err error
		add := func(a slog.Attr) {
			if e, ok := a.Value.Any().(error); ok && err == nil {
				err = e
			}
			extra[h.qualify(a.Key)] = a.Value.String()
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(func(a slog.Attr) bool { add(a); return true })
		h.sentry.Capture(r.Message, err, extra)
	}
	return h.next.Handle(ctx, r)
}

func (h *sentryHandler) qualify(k string) string {
	if h.group == "" {
		return k
	}
	return h.group + "." + k
}

func (h *sentryHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = append([]slog.Attr{}, h.attrs...)
	for _, a := range as {
		a.Key = h.qualify(a.Key)
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *sentryHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = h.qualify(name)
	return &c
}
