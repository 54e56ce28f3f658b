// Package config owns the environment contract of every Radar Pod binary:
// variable names, defaults, NAME_FILE secrets, validation with messages an
// operator can act on, warnings for unknown RADAR_* names, and a redacted
// print of the effective configuration.
package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// ExitCode is the status a binary exits with on invalid configuration.
const ExitCode = 2

// Error is one invalid variable. Its message names the variable, the bad
// value (unless the variable is secret) and what is allowed.
type Error struct {
	Var     string
	Value   string
	Secret  bool
	Problem string
	Allowed string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Var)
	if e.Secret {
		b.WriteString(" (value hidden: secret)")
	} else {
		fmt.Fprintf(&b, "=%q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	if e.Allowed != "" {
		b.WriteString("; allowed: ")
		b.WriteString(e.Allowed)
	}
	return b.String()
}

// Errors is every problem found in one load, so an operator fixes them all
// in one round trip to the pod.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return "invalid configuration:\n  " + strings.Join(msgs, "\n  ")
}

// orNil drops the range complaints about variables that could not even be
// parsed (their zero value is not what the operator wrote) and returns nil
// when nothing is wrong.
func (es Errors) orNil() error {
	unparsable := map[string]bool{}
	var out Errors
	for _, e := range es {
		if unparsable[e.Var] {
			continue
		}
		if e.Problem == problemUnparsable {
			unparsable[e.Var] = true
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

const problemUnparsable = "cannot be parsed"

// IsConfigError reports whether err means "the configuration is invalid"
// (exit with ExitCode) rather than a runtime failure.
func IsConfigError(err error) bool {
	var es Errors
	var e *Error
	return errors.As(err, &es) || errors.As(err, &e)
}

// ByteSize is a size in bytes that also accepts binary (KiB, MiB, GiB,
// TiB) and decimal (kB or KB, MB, GB, TB) suffixes: a data plan is sold
// in decimal gigabytes, a memory bound is thought of in binary ones.
type ByteSize int64

// sizeUnits are the suffixes ByteSize accepts, every one that ends in "B"
// before the bare "B" (the first match wins).
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// errSizeOverflow: a size that int64 cannot hold. It must not wrap:
// 17179869185GiB is 2^64 + 1 GiB, which multiplied out in int64 is 1 GiB.
var errSizeOverflow = errors.New("size too large")

// UnmarshalText implements encoding.TextUnmarshaler for env parsing.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return errSizeOverflow
	}
	if err != nil {
		return errors.New("not a size")
	}
	if n > math.MaxInt64/mult || n < math.MinInt64/mult {
		return errSizeOverflow
	}
	*b = ByteSize(n * mult)
	return nil
}

// formatSize writes n the way an operator would: with the largest suffix
// that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b ByteSize) String() string { return strconv.FormatInt(int64(b), 10) }

// Environ turns os.Environ-style pairs into a map.
func Environ(pairs []string) map[string]string {
	m := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// field describes one variable of a config struct, read from its tags.
type field struct {
	name    string
	secret  bool
	def     string
	hasDef  bool
	help    string
	index   []int
	typ     reflect.Type
	goField string
	// min and max bound a duration, size or int variable (tags `min`,
	// `max`, written as the operator would write the value).
	min, max string
	// zeroOff: 0 (or empty) is accepted outside the bounds and means the
	// feature is off (tag `zero:"off"`).
	zeroOff bool
}

func fieldsOf(v any) []field {
	var out []field
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("env")
		if tag == "" || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		def, hasDef := sf.Tag.Lookup("envDefault")
		if d, ok := sf.Tag.Lookup("default"); ok { // documented default not applied by env (see ServerURL)
			def, hasDef = d, true
		}
		out = append(out, field{
			name: name, secret: sf.Tag.Get("secret") == "true", def: def, hasDef: hasDef,
			help: sf.Tag.Get("help"), index: sf.Index, typ: sf.Type, goField: sf.Name,
			min: sf.Tag.Get("min"), max: sf.Tag.Get("max"), zeroOff: sf.Tag.Get("zero") == "off",
		})
	}
	return out
}

// load resolves NAME_FILE secrets, parses env into cfg and translates parse
// failures into Errors naming the variable.
func load(cfg any, environ map[string]string) (set map[string]bool, errs Errors) {
	fields := fieldsOf(cfg)
	environ = copyMap(environ)
	for _, f := range fields {
		if !f.secret {
			continue
		}
		path, ok := environ[f.name+"_FILE"]
		if !ok || path == "" {
			continue
		}
		if v, both := environ[f.name]; both && v != "" {
			errs = append(errs, &Error{Var: f.name + "_FILE", Value: path, Problem: "both " + f.name + " and " + f.name + "_FILE are set", Allowed: "set only one of them"})
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &Error{Var: f.name + "_FILE", Value: path, Problem: "cannot read the secret file: " + unwrapPathError(err), Allowed: "a readable file holding the value"})
			continue
		}
		environ[f.name] = strings.TrimRight(string(b), "\r\n")
	}
	set = map[string]bool{}
	for _, f := range fields {
		if _, ok := environ[f.name]; ok {
			set[f.name] = true
		}
	}
	err := env.ParseWithOptions(cfg, env.Options{Environment: environ})
	// Fields whose empty value means something (standalone mode, no
	// endpoint) carry their default in a `default` tag instead of
	// envDefault, which would replace an explicit empty value: apply it
	// only when the variable is absent.
	v := reflect.ValueOf(cfg).Elem()
	for _, f := range fields {
		if _, present := environ[f.name]; !present && f.hasDef && f.typ.Kind() == reflect.String {
			if fv := v.FieldByIndex(f.index); fv.String() == "" {
				fv.SetString(f.def)
			}
		}
	}
	failed := map[string]bool{}
	var agg env.AggregateError
	if errors.As(err, &agg) {
		for _, e := range agg.Errors {
			var pe env.ParseError
			if !errors.As(e, &pe) {
				errs = append(errs, &Error{Var: "?", Problem: e.Error()})
				continue
			}
			for _, f := range fields {
				if f.goField != pe.Name {
					continue
				}
				failed[f.name] = true
				problem := problemUnparsable
				if errors.Is(pe.Err, errSizeOverflow) {
					problem = "out of range: must be " + f.rangeText()
				}
				errs = append(errs, &Error{Var: f.name, Value: environ[f.name], Secret: f.secret, Problem: problem, Allowed: allowedFor(f)})
			}
		}
	} else if err != nil {
		errs = append(errs, &Error{Var: "?", Problem: err.Error()})
	}
	for _, f := range fields {
		if !failed[f.name] {
			checkBounds(&errs, f, v.FieldByIndex(f.index), environ)
		}
	}
	return set, errs
}

// checkBounds refuses a duration or size outside its field's `min`/`max`
// tags. Every such variable has both: a value far beyond any sensible one
// is a typo, and the code that uses it (timers, deadlines, the lock
// margin added to RADAR_TEST_TIMEOUT) may overflow on it.
func checkBounds(errs *Errors, f field, v reflect.Value, environ map[string]string) {
	if f.min == "" && f.max == "" {
		return
	}
	lo, hi := f.bounds()
	val := v.Int()
	if val == 0 && f.zeroOff {
		return
	}
	var problem string
	switch {
	case val < lo && val < 0:
		problem = "negative: must be at least " + f.min
	case val < lo:
		problem = "too small: must be at least " + f.min
	case val > hi:
		problem = "too large: must be at most " + f.max
	default:
		return
	}
	shown, ok := environ[f.name]
	if !ok {
		shown = formatValue(v)
	}
	*errs = append(*errs, &Error{Var: f.name, Value: shown, Secret: f.secret, Problem: problem, Allowed: allowedFor(f)})
}

// bounds parses the field's `min` and `max` tags as values of its type; a
// tag that does not parse is a bug in this package, caught by its tests.
func (f field) bounds() (lo, hi int64) {
	parse := func(s string) int64 {
		switch f.typ {
		case reflect.TypeOf(time.Duration(0)):
			d, err := time.ParseDuration(s)
			if err != nil {
				panic(fmt.Sprintf("config: %s: bad bound %q: %v", f.name, s, err))
			}
			return int64(d)
		case reflect.TypeOf(ByteSize(0)):
			var b ByteSize
			if err := b.UnmarshalText([]byte(s)); err != nil {
				panic(fmt.Sprintf("config: %s: bad bound %q: %v", f.name, s, err))
			}
			return int64(b)
		}
		if f.typ.Kind() == reflect.Int {
			n, err := strconv.Atoi(s)
			if err != nil {
				panic(fmt.Sprintf("config: %s: bad bound %q: %v", f.name, s, err))
			}
			return int64(n)
		}
		panic(fmt.Sprintf("config: %s: bounds on a %s", f.name, f.typ))
	}
	return parse(f.min), parse(f.max)
}

// rangeText is how the README and the errors state a field's range.
func (f field) rangeText() string {
	if f.min == "" && f.max == "" {
		return ""
	}
	return "from " + f.min + " to " + f.max
}

func allowedFor(f field) string {
	t := f.typ
	switch {
	case t == reflect.TypeOf(time.Duration(0)) && f.min != "":
		return "a duration " + f.rangeText() + ", such as " + f.def
	case t == reflect.TypeOf(time.Duration(0)):
		return "a duration such as 15s, 2m or 1h30m"
	case t == reflect.TypeOf(ByteSize(0)) && f.zeroOff:
		return "0 or empty (off), or a size " + f.rangeText() + ": bytes, or with a decimal (MB, GB, TB) or binary (MiB, GiB, TiB) suffix (e.g. 50GB)"
	case t == reflect.TypeOf(ByteSize(0)) && f.min != "":
		return "a size " + f.rangeText() + ": bytes, or with a KiB, MiB or GiB suffix (e.g. " + formatSize(mustSize(f.def)) + ")"
	case t == reflect.TypeOf(ByteSize(0)):
		return "a size in bytes, optionally with KiB, MiB or GiB (e.g. 67108864 or 64MiB)"
	case t.Kind() == reflect.Float64:
		return "a number such as 4 or 0.5"
	case t.Kind() == reflect.Int && f.min != "":
		return "a whole number " + f.rangeText()
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "a whole number"
	case t.Kind() == reflect.Bool:
		return "true or false"
	}
	return ""
}

func mustSize(s string) int64 {
	var b ByteSize
	if err := b.UnmarshalText([]byte(s)); err != nil {
		panic(fmt.Sprintf("config: bad size %q: %v", s, err))
	}
	return int64(b)
}

func unwrapPathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// UnknownVariables lists RADAR_* names in environ that no binary reads, so a
// typo (RADAR_TEST=ookla) is reported instead of silently ignored. Each
// binary accepts the other's names: compose gives the agent two of the
// updater's (its network check reads them), and a `docker run --env-file`
// may give both the same file. (A name compose passes to neither container
// never gets here: `make env-check` reports those.)
func UnknownVariables(environ map[string]string) []string {
	known := map[string]bool{}
	for _, cfg := range []any{Agent{}, Updater{}} {
		for _, f := range fieldsOf(cfg) {
			known[f.name] = true
			if f.secret {
				known[f.name+"_FILE"] = true
			}
		}
	}
	var unknown []string
	for k := range environ {
		if strings.HasPrefix(k, "RADAR_") && !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	return unknown
}

// Print writes the effective configuration as NAME=value lines, secrets
// redacted, marking values that came from defaults.
func Print(w io.Writer, cfg any, set map[string]bool) {
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	for _, f := range fieldsOf(cfg) {
		fv := v.FieldByIndex(f.index)
		val := formatValue(fv)
		switch {
		case f.secret && val != "":
			val = redactSecret(f.name, val)
		case strings.Contains(val, "://"):
			// A URL the validation accepts may still carry a password or a
			// signed query (RADAR_CRL_URL): print where it points, not that.
			val = redactURL(val)
		}
		origin := "default"
		if set[f.name] {
			origin = "set"
		}
		fmt.Fprintf(w, "%s=%s\t# %s\n", f.name, val, origin)
	}
}

func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case []string:
		return strings.Join(x, ",")
	case time.Duration:
		return x.String()
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v.Interface())
}

// redactSecret hides a secret but keeps what helps debugging: a DSN keeps its
// host and project, so an operator can see which Sentry it points to.
func redactSecret(name, val string) string {
	if name == "SENTRY_DSN" {
		if u, err := url.Parse(val); err == nil && u.Host != "" {
			return u.Scheme + "://" + redactedText + "@" + u.Host + u.Path
		}
	}
	return redactedText
}

// Docs lists the variables of cfg with defaults and help, for the README.
func Docs(cfg any) [][3]string {
	var rows [][3]string
	for _, f := range fieldsOf(cfg) {
		def := f.def
		if !f.hasDef {
			def = ""
		}
		rows = append(rows, [3]string{f.name, def, f.help})
	}
	return rows
}

// --- shared validators ---

func checkOneOf(errs *Errors, name, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	*errs = append(*errs, &Error{Var: name, Value: val, Problem: "unknown value", Allowed: strings.Join(allowed, ", ")})
}

func checkHostPort(errs *Errors, name, val string) {
	if val == "" {
		return
	}
	host, port, err := net.SplitHostPort(val)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 1 || p > 65535 || (host == "" && name != "RADAR_LISTEN_ADDR") {
		*errs = append(*errs, &Error{Var: name, Value: val, Problem: "not a host:port", Allowed: "host:port, e.g. ndt.example.org:443 or 127.0.0.1:9100"})
	}
}

// checkURL validates an absolute URL with one of the allowed schemes. The
// value is echoed with any userinfo and query hidden (redactURL).
func checkURL(errs *Errors, name, val string, secret bool, schemes ...string) *url.URL {
	u, err := url.Parse(val)
	allowed := "an absolute " + strings.Join(schemes, " or ") + " URL"
	if err != nil || u.Host == "" {
		*errs = append(*errs, &Error{Var: name, Value: redactURL(val), Secret: secret, Problem: "not an absolute URL", Allowed: allowed})
		return nil
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return u
		}
	}
	*errs = append(*errs, &Error{Var: name, Value: redactURL(val), Secret: secret, Problem: "unsupported scheme " + strconv.Quote(u.Scheme), Allowed: allowed})
	return nil
}

// redactURL hides the parts of a URL that carry secrets — the userinfo
// (user:password@) and the query — so an error can still show the operator
// which URL is wrong. It works on the raw text, because the values it is
// for are often the ones url.Parse refuses ("user:pw@host" without a
// scheme parses as scheme "user").
func redactURL(raw string) string {
	prefix, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	authority := rest
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		authority = rest[:end]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		rest = redactedText + rest[at:]
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		fragment := ""
		if h := strings.IndexByte(rest[q:], '#'); h >= 0 {
			fragment = rest[q+h:]
		}
		if rest[q+1:len(rest)-len(fragment)] != "" {
			rest = rest[:q] + "?" + redactedText + fragment
		}
	}
	return prefix + rest
}

const redactedText = "[REDACTED]"

func checkReadableFile(errs *Errors, name, path string) []byte {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		*errs = append(*errs, &Error{Var: name, Value: path, Problem: "cannot read file: " + unwrapPathError(err), Allowed: "a readable PEM file"})
		return nil
	}
	return b
}
