package netcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/speedtest/ndt7"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
)

// discover turns a wildcard or list row into real targets, the way the
// runner finds its servers. The returned ProbeResult is the discovery
// itself (nil when it needs no network).
func (c *checker) discover(ctx context.Context, p Probe) ([]Probe, *ProbeResult, []string) {
	switch p.Kind {
	case ProbeNDT7Locate:
		return c.locateTargets(ctx, p)
	case ProbeOoklaServers:
		return c.ooklaTargets(ctx, p)
	}
	return nil, nil, nil
}

// locateTargets asks M-Lab locate for the nearest ndt7 servers, as the
// ndt7 client does before a test, and returns checks of the first few with
// the scheme this pod uses.
func (c *checker) locateTargets(ctx context.Context, p Probe) ([]Probe, *ProbeResult, []string) {
	scheme := p.Scheme
	if scheme != "wss" && scheme != "ws" {
		scheme, _ = ndt7.ChooseScheme("auto")
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, &ProbeResult{Kind: p.Kind, Target: p.URL, Step: StepLocate, Hint: "bad locate URL: " + err.Error()}, nil
	}
	host, port, _ := hostPort(u)
	res, body := c.runHTTP(ctx, Probe{Kind: ProbeHTTP, Host: host, Port: port, URL: p.URL, Expect: []int{200},
		Body: BodyLocate, MaxBytes: 512 << 10, UserAgent: p.UserAgent})
	res.Kind = p.Kind
	if !res.OK {
		res.Hint = "asking M-Lab locate for servers: " + res.Hint
		return nil, &res, nil
	}
	nr, err := parseLocate(body)
	if err != nil { // validated already; kept for safety
		res.OK, res.Step, res.Hint = false, StepLocate, err.Error()
		return nil, &res, nil
	}
	key := scheme + ":///ndt/v7/download"
	var targets []Probe
	var notes []string
	for _, t := range nr.Results {
		if len(targets) == c.targets {
			break
		}
		raw, ok := t.URLs[key]
		if !ok {
			continue
		}
		tu, err := url.Parse(raw)
		if err != nil || tu.Hostname() == "" {
			continue
		}
		h, port, tls := hostPort(tu)
		kind := ProbeTCP
		if tls {
			kind = ProbeTLS
		}
		targets = append(targets, Probe{Kind: kind, Host: h, Port: port, CAFile: p.CAFile, Direct: p.Direct, UserAgent: p.UserAgent, group: ""})
		if !matchDomain(NDT7Domain, h) {
			notes = append(notes, fmt.Sprintf("locate sent %s, outside the documented domain %s", h, NDT7Domain))
		}
	}
	if len(targets) == 0 {
		res.OK, res.Step, res.Hint = false, StepLocate, "M-Lab locate named no "+scheme+" server"
	}
	return targets, &res, notes
}

// ooklaTargets lists the servers the Ookla runner would pick from: the
// CLI's own nearest-servers list when the CLI is installed, else Ookla's
// static list.
func (c *checker) ooklaTargets(ctx context.Context, p Probe) ([]Probe, *ProbeResult, []string) {
	var notes []string
	var hosts []string
	var disc *ProbeResult
	if p.OoklaBin != "" {
		if bin, err := exec.LookPath(p.OoklaBin); err != nil {
			notes = append(notes, "Ookla CLI "+p.OoklaBin+" not installed: checked servers from the static list")
		} else {
			res, hs := c.ooklaCLIServers(ctx, bin)
			if res.OK {
				hosts, disc = hs, &res
			} else {
				notes = append(notes, bin+" --servers failed ("+res.Hint+"): checked servers from the static list")
			}
		}
	}
	if len(hosts) == 0 {
		u, err := url.Parse(p.URL)
		if err != nil {
			return nil, &ProbeResult{Kind: p.Kind, Target: p.URL, Step: StepServers, Hint: "bad server list URL: " + err.Error()}, notes
		}
		host, port, _ := hostPort(u)
		res, body := c.runHTTP(ctx, Probe{Kind: ProbeHTTP, Host: host, Port: port, URL: p.URL, Expect: []int{200},
			Body: BodyOoklaList, MaxBytes: 4 << 20, UserAgent: p.UserAgent})
		res.Kind = p.Kind
		disc = &res
		if !res.OK {
			res.Hint = "fetching the Ookla server list: " + res.Hint
			return nil, disc, notes
		}
		hosts, _ = parseOoklaList(body)
	}
	if len(hosts) > c.targets {
		hosts = hosts[:c.targets]
	}
	var targets []Probe
	for _, h := range hosts {
		for _, port := range p.Ports {
			targets = append(targets, Probe{Kind: ProbeTCP, Host: h, Port: port, Direct: true, UserAgent: p.UserAgent, group: fmt.Sprintf(" on port %d", port)})
		}
	}
	return targets, disc, notes
}

// ooklaCLIServers asks the Ookla CLI for the servers it would test
// against, through the runner that drives the CLI for tests.
func (c *checker) ooklaCLIServers(ctx context.Context, bin string) (ProbeResult, []string) {
	res := ProbeResult{Kind: ProbeOoklaServers, Target: bin + " --servers"}
	if !c.acquire(ctx) {
		res.Step, res.Hint = StepDeadline, "not checked: the overall deadline of the check ran out"
		return res, nil
	}
	defer c.release()
	rec := &recorder{}
	var hosts []string
	start := time.Now()
	// The CLI itself asks speedtest.net, so it gets a few steps' worth.
	err := rec.do(ctx, 4*c.step, StepServers, func(ctx context.Context) (string, error) {
		servers, err := ookla.New(ookla.Options{Bin: bin, Logger: c.log}).Servers(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return "", &hinted{hint: "timed out", err: err}
			}
			return "", &hinted{hint: err.Error(), err: err}
		}
		for _, s := range servers {
			h := s.Host
			if hh, _, err := net.SplitHostPort(h); err == nil {
				h = hh
			}
			if h != "" {
				hosts = appendUnique(hosts, h)
			}
		}
		if len(hosts) == 0 {
			return "", &hinted{hint: "the CLI listed no server host", err: errors.New("no server host")}
		}
		return fmt.Sprintf("%d servers", len(hosts)), nil
	})
	rec.result(&res, err)
	res.Duration = time.Since(start)
	return res, hosts
}

// matchDomain matches host against a domain that may start with "*.".
func matchDomain(pattern, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return host == pattern
}
