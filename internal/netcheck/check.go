package netcheck

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/httpclient"
)

// Resolver is the part of *net.Resolver the check uses.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Dialer is the part of *net.Dialer the check uses.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// CheckOptions tune Check. The zero value checks the real network the way
// the pod's own clients reach it.
type CheckOptions struct {
	// Resolver resolves host names (default net.DefaultResolver).
	Resolver Resolver
	// Dialer opens TCP connections to resolved addresses (default the
	// httpclient dialer).
	Dialer Dialer
	// RootCAs replaces the system roots (RADAR_NDT7_CA_FILE is added to
	// them for the ndt7 rows).
	RootCAs *x509.CertPool
	// Proxy picks the proxy for a request (default http.ProxyFromEnvironment,
	// as every client of the pod does). Direct probes ignore it.
	Proxy func(*http.Request) (*url.URL, error)
	// Concurrency bounds the probes in flight (default 8).
	Concurrency int
	// StepTimeout bounds each DNS lookup, TCP connect and TLS handshake;
	// an HTTP exchange gets three times as much (default 5 s).
	StepTimeout time.Duration
	// Timeout bounds the whole check (default 60 s).
	Timeout time.Duration
	// MaxTargets bounds the servers checked for a row whose hosts are
	// discovered (ndt7 via locate, Ookla) (default 3).
	MaxTargets int
	// Logger receives one debug line per probe (default: discard).
	Logger *slog.Logger
}

// Verdict of a row.
type Verdict string

const (
	Pass Verdict = "pass"
	Fail Verdict = "fail"
	// Skip is a row with nothing to check for this configuration.
	Skip Verdict = "skip"
)

// Step names, in the order a probe runs them.
const (
	StepDNS      = "dns"
	StepProxy    = "proxy"
	StepTCP      = "tcp"
	StepTLS      = "tls"
	StepHTTP     = "http"
	StepLocate   = "locate"
	StepServers  = "server list"
	StepDeadline = "deadline"
)

// Report is the result of one Check.
type Report struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"-"`
	Rows     []RowResult   `json:"rows"`
}

// RowResult is the verdict of one requirement.
type RowResult struct {
	ID       string        `json:"id"`
	Service  string        `json:"service"`
	Required bool          `json:"required"`
	Verdict  Verdict       `json:"verdict"`
	Duration time.Duration `json:"-"`
	// Step and Hint describe the first failure, for a human.
	Step   string        `json:"failed_step,omitempty"`
	Hint   string        `json:"hint,omitempty"`
	Notes  []string      `json:"notes,omitempty"`
	Probes []ProbeResult `json:"probes"`
}

// ProbeResult is one endpoint checked.
type ProbeResult struct {
	Kind     ProbeKind     `json:"kind"`
	Target   string        `json:"target"`
	OK       bool          `json:"ok"`
	Duration time.Duration `json:"-"`
	Step     string        `json:"failed_step,omitempty"`
	Hint     string        `json:"hint,omitempty"`
	Steps    []StepResult  `json:"steps"`
	// group gathers the targets of a discovered row that stand for one
	// another (all ndt7 servers; the Ookla servers on one port): one
	// success per group is enough.
	group string
}

// StepResult is one step of a probe.
type StepResult struct {
	Name     string        `json:"name"`
	OK       bool          `json:"ok"`
	Duration time.Duration `json:"-"`
	Detail   string        `json:"detail,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// OK reports whether every required row passed.
func (r Report) OK() bool {
	for _, row := range r.Rows {
		if row.Required && row.Verdict == Fail {
			return false
		}
	}
	return true
}

// Failed lists the rows that did not pass, required or not.
func (r Report) Failed() []RowResult {
	var out []RowResult
	for _, row := range r.Rows {
		if row.Verdict == Fail {
			out = append(out, row)
		}
	}
	return out
}

// Summary is one line for a log: the verdict and what failed where.
func (r Report) Summary() string {
	failed := r.Failed()
	if len(failed) == 0 {
		return fmt.Sprintf("network check passed: %d rows reachable", len(r.Rows))
	}
	verdict := "network check failed"
	if r.OK() {
		verdict = "network check passed (informational rows failed)"
	}
	s := verdict + ":"
	for i, row := range failed {
		if i > 0 {
			s += ";"
		}
		s += fmt.Sprintf(" %s (%s: %s)", row.ID, row.Step, row.Hint)
	}
	return s
}

// Unreachable names, in one line for a log, what failed and at which
// step: "2 of 9 rows failed: sentry o.example.org:443 (tcp), locate
// locate.measurementlab.net:443 (dns)". Each row shows its first failing
// endpoint, and how many more failed; "" when nothing failed.
func (r Report) Unreachable() string {
	failed := r.Failed()
	if len(failed) == 0 {
		return ""
	}
	parts := make([]string, 0, len(failed))
	for _, row := range failed {
		part := row.ID
		var bad []ProbeResult
		for _, p := range row.Probes {
			if !p.OK && p.Target != "" {
				bad = append(bad, p)
			}
		}
		switch {
		case len(bad) > 0:
			part += " " + bad[0].Target + " (" + firstNonEmpty(bad[0].Step, row.Step) + ")"
			if len(bad) > 1 {
				part += fmt.Sprintf(" and %d more", len(bad)-1)
			}
		case row.Step != "":
			part += " (" + row.Step + ")"
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("%d of %d rows failed: %s", len(failed), len(r.Rows), strings.Join(parts, ", "))
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

type checker struct {
	resolver Resolver
	dialer   Dialer
	roots    *x509.CertPool
	proxy    func(*http.Request) (*url.URL, error)
	step     time.Duration
	targets  int
	sem      chan struct{}
	log      *slog.Logger

	poolMu sync.Mutex
	pools  map[string]*x509.CertPool
}

// Check runs every requirement's checks, rows in parallel and at most
// opts.Concurrency probes at a time, within opts.Timeout.
func Check(ctx context.Context, reqs []Requirement, opts CheckOptions) Report {
	c := newChecker(opts)
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	rows := make([]RowResult, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = c.row(ctx, req)
		}()
	}
	wg.Wait()
	return Report{Started: start, Duration: time.Since(start), Rows: rows}
}

func newChecker(o CheckOptions) *checker {
	c := &checker{
		resolver: o.Resolver,
		dialer:   o.Dialer,
		roots:    o.RootCAs,
		proxy:    o.Proxy,
		step:     o.StepTimeout,
		targets:  o.MaxTargets,
		log:      o.Logger,
		pools:    map[string]*x509.CertPool{},
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.dialer == nil {
		c.dialer = httpclient.Dialer(nil)
	}
	if c.proxy == nil {
		c.proxy = http.ProxyFromEnvironment
	}
	if c.step <= 0 {
		c.step = 5 * time.Second
	}
	if c.targets <= 0 {
		c.targets = 3
	}
	n := o.Concurrency
	if n <= 0 {
		n = 8
	}
	c.sem = make(chan struct{}, n)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// rootsFor is the pool a probe verifies with: the configured roots plus the
// probe's extra CA file.
func (c *checker) rootsFor(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return c.roots, nil
	}
	c.poolMu.Lock()
	defer c.poolMu.Unlock()
	if p, ok := c.pools[caFile]; ok {
		return p, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	var pool *x509.CertPool
	if c.roots != nil {
		pool = c.roots.Clone()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", caFile)
		}
	} else if pool, err = httpclient.LoadCertPool(pem); err != nil {
		return nil, fmt.Errorf("CA file %s: %w", caFile, err)
	}
	c.pools[caFile] = pool
	return pool, nil
}

// row checks one requirement. Fixed probes must all pass; the targets a row
// discovers (ndt7 servers, Ookla servers) stand for one another, as the
// clients try the next when one fails, so one success per group (all ndt7
// servers; the Ookla servers on one port) is enough.
func (c *checker) row(ctx context.Context, req Requirement) RowResult {
	start := time.Now()
	res := RowResult{ID: req.ID, Service: req.Service, Required: req.Required}
	if len(req.Checks) == 0 {
		res.Verdict = Skip
		res.Hint = "nothing to check for this configuration"
		return res
	}
	type outcome struct {
		fixed      []ProbeResult
		discovered []ProbeResult
		discovery  *ProbeResult
		notes      []string
	}
	outcomes := make([]outcome, len(req.Checks))
	var wg sync.WaitGroup
	for i, p := range req.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &outcomes[i]
			switch p.Kind {
			case ProbeNDT7Locate, ProbeOoklaServers:
				targets, disc, notes := c.discover(ctx, p)
				o.notes = notes
				if disc != nil {
					o.discovery = disc
					if !disc.OK {
						return
					}
				}
				o.discovered = c.runAll(ctx, targets)
			default:
				o.fixed = []ProbeResult{c.run(ctx, p)}
			}
		}()
	}
	wg.Wait()

	res.Verdict = Pass
	fail := func(step, hint string) {
		if res.Verdict == Pass {
			res.Verdict, res.Step, res.Hint = Fail, step, hint
		}
	}
	for _, o := range outcomes {
		res.Notes = append(res.Notes, o.notes...)
		if o.discovery != nil {
			res.Probes = append(res.Probes, *o.discovery)
			if !o.discovery.OK {
				fail(o.discovery.Step, o.discovery.Hint)
			}
		}
		for _, pr := range o.fixed {
			res.Probes = append(res.Probes, pr)
			if !pr.OK {
				fail(pr.Step, pr.Hint)
			}
		}
		res.Probes = append(res.Probes, o.discovered...)
		if o.discovery != nil && o.discovery.OK && len(o.discovered) == 0 {
			fail(StepServers, "no server to check")
		}
		// Groups in order of first appearance, so the hint is stable.
		var groups []string
		byGroup := map[string][]ProbeResult{}
		for _, pr := range o.discovered {
			if _, ok := byGroup[pr.group]; !ok {
				groups = append(groups, pr.group)
			}
			byGroup[pr.group] = append(byGroup[pr.group], pr)
		}
		for _, g := range groups {
			members := byGroup[g]
			if slices.ContainsFunc(members, func(pr ProbeResult) bool { return pr.OK }) {
				continue
			}
			fail(members[0].Step, fmt.Sprintf("%s%s: %s (%s)", unreachable(len(members)), g, members[0].Hint, members[0].Target))
		}
	}
	res.Duration = time.Since(start)
	return res
}

// unreachable opens the hint of a discovered row none of whose n targets
// answered; the group (" on port 5060") and the first failure follow. One
// target needs its own wording: "the server reachable on port 5060: …"
// reads as the opposite of what happened.
func unreachable(n int) string {
	if n == 1 {
		return "the one server checked is not reachable"
	}
	return fmt.Sprintf("none of %d servers reachable", n)
}

func (c *checker) runAll(ctx context.Context, probes []Probe) []ProbeResult {
	out := make([]ProbeResult, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.run(ctx, p)
		}()
	}
	wg.Wait()
	return out
}

// acquire takes a concurrency slot, or fails when the deadline comes first.
func (c *checker) acquire(ctx context.Context) bool {
	select {
	case c.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *checker) release() { <-c.sem }

func target(p Probe) string {
	switch p.Kind {
	case ProbeHTTP:
		return p.URL
	}
	return net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
}
