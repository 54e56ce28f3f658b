package telemetry

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The pod's metrics are a few dozen series written in Prometheus's text
// exposition format (version 0.0.4). They used to come from
// prometheus/client_golang, whose registry, descriptors and protobuf
// dependency cost the agent 2 MB of binary and 1.6 MiB of idle RSS
// (docs/benchmarks/footprint.md; issue 14's footprint target); the pod
// needs counters, gauges, labels and the text format, nothing else. The
// format is checked against Prometheus's own parser in the tests.

// Counter is a value that only goes up.
type Counter struct{ v atomicFloat }

// Inc adds 1.
func (c *Counter) Inc() { c.v.add(1) }

// Add adds d; a negative d is ignored (a counter never goes down).
func (c *Counter) Add(d float64) {
	if d > 0 {
		c.v.add(d)
	}
}

// Value is the current count.
func (c *Counter) Value() float64 { return c.v.load() }

// Gauge is a value that goes up and down.
type Gauge struct{ v atomicFloat }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.v.store(v) }

// Inc adds 1.
func (g *Gauge) Inc() { g.v.add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.v.add(-1) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) { g.v.add(d) }

// Value is the current value.
func (g *Gauge) Value() float64 { return g.v.load() }

type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat) store(v float64) { f.bits.Store(math.Float64bits(v)) }
func (f *atomicFloat) add(d float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// vec holds the labelled children of one series family, created on first
// use like client_golang's vectors.
type vec[T any] struct {
	labels []string
	mu     sync.Mutex
	kids   map[string]*child[T]
}

type child[T any] struct {
	values []string
	m      T
}

func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		// A programming error, as in client_golang: the label names are
		// fixed at registration.
		panic("telemetry: " + strconv.Itoa(len(values)) + " label values for labels " + strings.Join(v.labels, ","))
	}
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.kids[key]
	if !ok {
		if v.kids == nil {
			v.kids = map[string]*child[T]{}
		}
		c = &child[T]{values: slices.Clone(values)}
		v.kids[key] = c
	}
	return &c.m
}

// Reset removes every child: series that no longer apply (the previous
// update state, the previous NDT7 scheme) disappear from the page.
func (v *vec[T]) Reset() {
	v.mu.Lock()
	v.kids = nil
	v.mu.Unlock()
}

// sorted returns the children ordered by their label values, so the page
// is stable between scrapes.
func (v *vec[T]) sorted() []*child[T] {
	v.mu.Lock()
	kids := make([]*child[T], 0, len(v.kids))
	for _, c := range v.kids {
		kids = append(kids, c)
	}
	v.mu.Unlock()
	slices.SortFunc(kids, func(a, b *child[T]) int { return slices.Compare(a.values, b.values) })
	return kids
}

// CounterVec is a family of counters told apart by label values.
type CounterVec struct{ vec[Counter] }

// WithLabelValues is the counter for these label values (in the order the
// labels were declared), created at zero on first use.
func (v *CounterVec) WithLabelValues(values ...string) *Counter { return v.with(values) }

// GaugeVec is a family of gauges told apart by label values.
type GaugeVec struct{ vec[Gauge] }

// WithLabelValues is the gauge for these label values (in the order the
// labels were declared), created at zero on first use.
func (v *GaugeVec) WithLabelValues(values ...string) *Gauge { return v.with(values) }

// family is one metric name on the page: its HELP and TYPE lines and a
// way to list its samples.
type family struct {
	name, help, kind string
	samples          func(emit func(labels []string, values []string, v float64))
}

// registry is the ordered set of families a Metrics exposes.
type registry struct {
	fams []family
}

func (r *registry) counter(name, help string) *Counter {
	c := &Counter{}
	r.add(name, help, "counter", func(emit func([]string, []string, float64)) { emit(nil, nil, c.Value()) })
	return c
}

func (r *registry) gauge(name, help string) *Gauge {
	g := &Gauge{}
	r.add(name, help, "gauge", func(emit func([]string, []string, float64)) { emit(nil, nil, g.Value()) })
	return g
}

func (r *registry) counterVec(name, help string, labels ...string) *CounterVec {
	v := &CounterVec{vec[Counter]{labels: labels}}
	r.add(name, help, "counter", func(emit func([]string, []string, float64)) {
		for _, c := range v.sorted() {
			emit(labels, c.values, c.m.Value())
		}
	})
	return v
}

func (r *registry) gaugeVec(name, help string, labels ...string) *GaugeVec {
	v := &GaugeVec{vec[Gauge]{labels: labels}}
	r.add(name, help, "gauge", func(emit func([]string, []string, float64)) {
		for _, c := range v.sorted() {
			emit(labels, c.values, c.m.Value())
		}
	})
	return v
}

func (r *registry) add(name, help, kind string, samples func(func([]string, []string, float64))) {
	for _, f := range r.fams {
		if f.name == name {
			panic("telemetry: metric " + name + " registered twice")
		}
	}
	r.fams = append(r.fams, family{name: name, help: help, kind: kind, samples: samples})
}

// write renders every family with at least one sample, sorted by name as
// Prometheus's own registry does.
func (r *registry) write(w io.Writer) error {
	fams := slices.Clone(r.fams)
	slices.SortFunc(fams, func(a, b family) int { return strings.Compare(a.name, b.name) })
	bw := bufio.NewWriter(w)
	var line []byte
	for _, f := range fams {
		header := false
		f.samples(func(labels, values []string, v float64) {
			if !header {
				header = true
				line = append(line[:0], "# HELP "...)
				line = append(line, f.name...)
				line = append(line, ' ')
				line = appendEscaped(line, f.help, false)
				line = append(line, "\n# TYPE "...)
				line = append(line, f.name...)
				line = append(line, ' ')
				line = append(line, f.kind...)
				line = append(line, '\n')
				bw.Write(line)
			}
			line = append(line[:0], f.name...)
			if len(labels) > 0 {
				line = append(line, '{')
				for i, l := range labels {
					if i > 0 {
						line = append(line, ',')
					}
					line = append(line, l...)
					line = append(line, `="`...)
					line = appendEscaped(line, values[i], true)
					line = append(line, '"')
				}
				line = append(line, '}')
			}
			line = append(line, ' ')
			line = appendValue(line, v)
			line = append(line, '\n')
			bw.Write(line)
		})
	}
	return bw.Flush()
}

// appendEscaped escapes as the text format requires: backslash and
// newline in HELP, and also the double quote in label values.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// contentType is the text exposition format's media type.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// ServeHTTP serves the page (GET or HEAD).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", contentType)
	if r.Method == http.MethodHead {
		return
	}
	m.reg.write(w)
}

// WriteText writes the page to w.
func (m *Metrics) WriteText(w io.Writer) error { return m.reg.write(w) }
