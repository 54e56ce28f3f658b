// Package netcheck owns the pod's network requirements: every connection a
// pod makes, derived as data from the effective configuration (rendered as
// Markdown for network administrators and as JSON), and the live check of
// each of them (DNS, TCP, TLS with certificate verification, and a request
// that proves the real service answered), with a human hint for whatever
// step fails.
package netcheck

//go:generate go run ./gendoc -o ../../docs/network-requirements.md

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/speedtest/ndt7"
)

// Who needs a connection.
const (
	WhoAgent   = "agent"
	WhoUpdater = "updater"
	WhoHost    = "host"
)

// Row IDs: stable and short, they label the radar_network_check_pass metric.
const (
	RowPods     = "pods"
	RowSentry   = "sentry"
	RowLocate   = "locate"
	RowNDT7     = "ndt7"
	RowOoklaAPI = "ookla-api"
	RowOokla    = "ookla"
	RowCRL      = "crl"
	RowRegistry = "registry"
	RowAPT      = "apt"
)

// Defaults of the third-party endpoints. They are not configuration of the
// pod; the options exist so tests can point them at loopback servers.
const (
	DefaultLocateURL       = "https://locate.measurementlab.net/v2/nearest/"
	DefaultOoklaServerList = "https://c.speedtest.net/speedtest-servers-static.php"
	// NDT7Domain is where M-Lab locate sends ndt7 clients.
	NDT7Domain = "*.mlab-oti.measurement-lab.org"
)

// Requirement is one row of the table: a service the pod reaches, why, where,
// how, who needs it, and how check-network verifies it.
type Requirement struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Why     string `json:"why"`
	// Domains may hold wildcards (*.example.org). Empty when the hosts are
	// not fixed; DomainsNote then says where they come from.
	Domains     []string `json:"domains,omitempty"`
	DomainsNote string   `json:"domains_note,omitempty"`
	Protocol    string   `json:"protocol"`
	Ports       []int    `json:"ports"`
	TLS         bool     `json:"tls"`
	TLSNote     string   `json:"tls_note,omitempty"`
	Who         []string `json:"who"`
	// Required rows decide check-network's exit status; the others are
	// informational (the host's package repositories).
	Required bool `json:"required"`
	// When says which configuration makes the pod need this row.
	When string `json:"when"`
	// Checks are what check-network does for this row.
	Checks []Probe `json:"checks,omitempty"`
}

// ProbeKind is what a check does. Each kind includes the ones before it:
// DNS, then TCP, then TLS, then the request.
type ProbeKind string

const (
	// ProbeTCP resolves and connects.
	ProbeTCP ProbeKind = "tcp"
	// ProbeTLS also completes a TLS handshake and verifies the certificate.
	ProbeTLS ProbeKind = "tls"
	// ProbeHTTP sends a GET (over TLS for https URLs), without following
	// redirects, and checks the status.
	ProbeHTTP ProbeKind = "http"
	// ProbeNDT7Locate asks M-Lab locate for the nearest ndt7 servers, then
	// checks them (TLS for wss, TCP for ws).
	ProbeNDT7Locate ProbeKind = "ndt7-locate"
	// ProbeOoklaServers lists the Ookla servers the runner would use, then
	// connects to each on the row's ports.
	ProbeOoklaServers ProbeKind = "ookla-servers"
)

// Body validations for HTTP probes: a status alone cannot tell the real
// object from a portal page served with 200.
const (
	BodyCRL       = "crl"
	BodyLocate    = "locate"
	BodyOoklaList = "ookla-list"
	// BodyAptRelease checks the start of a Release file: the file is
	// large, its first fields are proof enough.
	BodyAptRelease = "apt-release"
	BodyAnyContent = ""
)

// Probe is one check of a row.
type Probe struct {
	Kind ProbeKind `json:"kind"`
	Host string    `json:"host,omitempty"`
	Port int       `json:"port,omitempty"`
	// URL is the request of http probes, and the locate or server-list URL
	// of the discovery kinds.
	URL string `json:"url,omitempty"`
	// Expect lists the HTTP statuses that prove reachability. Empty means
	// any status below 500: the service answered.
	Expect []int `json:"expect_status,omitempty"`
	// Redirect, when set, is the path on the probed host that a redirect
	// must lead to: a redirect anywhere else is a portal's or a proxy's.
	Redirect string `json:"expect_redirect,omitempty"`
	// Note says, for the table, why the check asks what it asks.
	Note string `json:"note,omitempty"`
	// Body, when set, must parse as that kind of document.
	Body string `json:"expect_body,omitempty"`
	// MaxBytes caps the body read.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// CAFile adds roots to the system ones (RADAR_NDT7_CA_FILE).
	CAFile string `json:"ca_file,omitempty"`
	// Scheme is the ndt7 scheme of ndt7-locate probes (wss or ws).
	Scheme string `json:"scheme,omitempty"`
	// Ports are the ports of ookla-servers probes.
	Ports []int `json:"ports,omitempty"`
	// OoklaBin is the CLI whose --servers output names the servers.
	OoklaBin string `json:"ookla_bin,omitempty"`
	// Direct probes never use HTTPS_PROXY: the traffic they stand for does
	// not go through it (raw test traffic, the host's APT).
	Direct bool `json:"direct,omitempty"`
	// UserAgent is who is asking (the agent or the updater).
	UserAgent string `json:"-"`
	// group gathers discovered targets that stand for one another.
	group string
}

type options struct {
	generic         bool
	locateURL       string
	ooklaServerList string
}

// Option adjusts Requirements.
type Option func(*options)

// Generic describes what any pod with this configuration may do instead of
// this pod's own choices: rows that an unset optional variable removes
// (Sentry) appear with their condition, and the ndt7 row lists both schemes
// rather than the one this CPU picks. The generated document uses it, so it
// is the same on every machine.
func Generic() Option { return func(o *options) { o.generic = true } }

// WithLocateURL replaces M-Lab locate's v2 "nearest" base URL.
func WithLocateURL(u string) Option { return func(o *options) { o.locateURL = u } }

// WithOoklaServerList replaces the URL of Ookla's static server list.
func WithOoklaServerList(u string) Option { return func(o *options) { o.ooklaServerList = u } }

// Requirements is the table for this configuration, in a stable order.
func Requirements(agent config.Agent, updater config.Updater, opts ...Option) []Requirement {
	o := options{locateURL: DefaultLocateURL, ooklaServerList: DefaultOoklaServerList}
	for _, f := range opts {
		f(&o)
	}
	var rows []Requirement
	add := func(r *Requirement) {
		if r != nil {
			rows = append(rows, *r)
		}
	}
	add(podsRow(agent))
	add(sentryRow(agent, updater, o))
	ndt7On := slices.Contains(agent.Tests, "ndt7")
	if ndt7On || o.generic {
		add(locateRow(agent, o))
		add(ndt7Row(agent, o))
	}
	if slices.Contains(agent.Tests, "ookla") || o.generic {
		add(ooklaAPIRow(o))
		add(ooklaRow(agent, o))
	}
	add(crlRow(updater))
	add(registryRow(updater))
	add(aptRow())
	return rows
}

func podsRow(agent config.Agent) *Requirement {
	if agent.Standalone() {
		return nil
	}
	u, err := url.Parse(agent.ServerURL)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	root, signIn, err := radar.SiteURLs(agent.ServerURL)
	if err != nil {
		return nil // config validation admits only http and https
	}
	host, port, tls := hostPort(u)
	proto := "HTTPS and WebSocket (wss)"
	if !tls {
		proto = "HTTP and WebSocket (ws)"
	}
	// The channel is never opened by the check: only the pod's own,
	// authenticated channel may be, and it is the proof that the cable
	// endpoint is reachable. The service logs an upgrade without
	// credentials as a pod failing to log in, and it has no health
	// endpoint; its root answers anyone, as a browser, with a redirect
	// to its sign-in page.
	const notAPod = "never as a pod: no credentials, no WebSocket upgrade and a User-Agent that is not a pod's, " +
		"so the service logs no failed pod login; the pod's own authenticated channel is what proves the " +
		"WebSocket endpoint"
	probe := Probe{
		Kind: ProbeHTTP, Host: host, Port: port, URL: root, MaxBytes: 64 << 10, UserAgent: checkUA(),
		Note: "asked as any web client asks, " + notAPod,
	}
	if tls {
		// Behind a verified certificate any answer below 500 is the
		// service's; its usual one is the redirect.
		probe.Note = "behind the verified certificate; the service answers with a redirect to " + signIn +
			". Asked as any web client asks, " + notAPod
	} else {
		// Without TLS anything on the path could answer: only the
		// service's own redirect to its sign-in page proves it.
		probe.Expect = []int{301, 302}
		probe.Redirect = signIn
	}
	return &Requirement{
		ID:      RowPods,
		Service: "Radar pods service",
		Why: "The agent registers with the pods service, keeps its live channel (an ActionCable WebSocket at " +
			"/api/v1/clients/ws) open for test requests and update announcements, sends HTTPS heartbeats while " +
			"the channel is down, and uploads every measurement. Without it the pod is invisible to Radar " +
			"(results wait in the outbox until it is reachable again).",
		Domains:  []string{host},
		Protocol: proto,
		Ports:    []int{port},
		TLS:      tls,
		Who:      []string{WhoAgent},
		Required: true,
		When:     "RADAR_SERVER_URL is not empty (absent in standalone mode)",
		Checks:   []Probe{probe},
	}
}

func sentryRow(agent config.Agent, updater config.Updater, o options) *Requirement {
	type dsnUse struct {
		dsn string
		who string
	}
	r := &Requirement{
		ID:      RowSentry,
		Service: "Sentry (error reports)",
		Why: "Errors and crashes of the agent and the updater are reported to Sentry, so bugs are found " +
			"without access to the pod. Nothing else depends on it.",
		Protocol: "HTTPS",
		TLS:      true,
		Required: true,
		When:     "SENTRY_DSN is set",
	}
	seen := map[string]bool{}
	for _, use := range []dsnUse{{agent.SentryDSN, WhoAgent}, {updater.SentryDSN, WhoUpdater}} {
		if use.dsn == "" {
			continue
		}
		u, err := url.Parse(use.dsn)
		if err != nil || u.Hostname() == "" {
			continue
		}
		host, port, tls := hostPort(u)
		if !slices.Contains(r.Who, use.who) {
			r.Who = append(r.Who, use.who)
		}
		if seen[net.JoinHostPort(host, strconv.Itoa(port))] {
			continue
		}
		seen[net.JoinHostPort(host, strconv.Itoa(port))] = true
		r.TLS = r.TLS && tls
		if !tls {
			r.Protocol = "HTTP"
		}
		r.Domains = appendUnique(r.Domains, host)
		r.Ports = appendUniqueInt(r.Ports, port)
		// The event endpoint without the key (the DSN's user part is a
		// secret): Sentry answers it with a 4xx, which proves the ingest
		// host is reachable.
		dir, project := path.Split(strings.TrimRight(u.Path, "/"))
		endpoint := url.URL{Scheme: u.Scheme, Host: u.Host, Path: path.Join(dir, "api", project, "envelope") + "/"}
		r.Checks = append(r.Checks, Probe{Kind: ProbeHTTP, Host: host, Port: port, URL: endpoint.String(), MaxBytes: 64 << 10, UserAgent: uaFor(use.who)})
	}
	if len(r.Checks) > 0 {
		return r
	}
	if !o.generic {
		return nil
	}
	r.DomainsNote = "the host of SENTRY_DSN (for example o1197382.ingest.sentry.io)"
	r.Ports = []int{443}
	r.Who = []string{WhoAgent, WhoUpdater}
	return r
}

func locateRow(agent config.Agent, o options) *Requirement {
	if agent.NDT7Server != "" && !o.generic {
		return nil
	}
	u, err := url.Parse(o.locateURL)
	if err != nil {
		return nil
	}
	host, port, tls := hostPort(u)
	return &Requirement{
		ID:      RowLocate,
		Service: "M-Lab locate",
		Why: "Before each NDT7 test the client asks M-Lab's locate service for the nearest healthy ndt7 " +
			"servers and short-lived access tokens for them.",
		Domains:  []string{host},
		Protocol: "HTTPS",
		Ports:    []int{port},
		TLS:      tls,
		Who:      []string{WhoAgent},
		Required: true,
		When:     "RADAR_TESTS includes ndt7 and RADAR_NDT7_SERVER is empty",
		Checks: []Probe{{
			Kind: ProbeHTTP, Host: host, Port: port, URL: locateNearest(o.locateURL),
			Expect: []int{200}, Body: BodyLocate, MaxBytes: 512 << 10, UserAgent: agentUA(),
		}},
	}
}

func ndt7Row(agent config.Agent, o options) *Requirement {
	r := &Requirement{
		ID:       RowNDT7,
		Service:  "NDT7 speed test servers (M-Lab)",
		Who:      []string{WhoAgent},
		Required: true,
		When:     "RADAR_TESTS includes ndt7",
	}
	why := "The NDT7 test measures download and upload against an M-Lab server. "
	if o.generic {
		r.Why = why + "M-Lab locate picks the nearest healthy server for each test, so the host changes from " +
			"test to test; every one of them is under the wildcard domain. RADAR_NDT7_SERVER pins one " +
			"host:port instead."
		r.Domains = []string{NDT7Domain}
		r.Protocol = "WSS or WS (WebSocket)"
		r.Ports = []int{443, 80}
		r.TLS = true
		r.TLSNote = "wss (TLS, port 443) when the CPU has AES instructions, ws (no TLS, port 80) otherwise " +
			"(RADAR_NDT7_SCHEME=auto): on a board without AES in hardware, encryption in software would " +
			"make the CPU, not the line, the bottleneck of the measurement. RADAR_NDT7_SCHEME=wss or ws forces one."
		r.Checks = []Probe{{Kind: ProbeNDT7Locate, URL: locateNearest(o.locateURL), Scheme: "auto", CAFile: agent.NDT7CAFile, Direct: true, UserAgent: agentUA()}}
		return r
	}
	scheme, reason := ndt7.ChooseScheme(agent.NDT7Scheme)
	tls := scheme == "wss"
	r.TLS = tls
	r.Protocol = "WS (WebSocket)"
	port := 80
	if tls {
		r.Protocol = "WSS (WebSocket over TLS)"
		port = 443
		r.TLSNote = "wss because " + reason
	} else {
		r.TLSNote = "ws, no TLS, because " + reason + " (encryption in software would make the CPU, not the line, the bottleneck)"
	}
	if agent.NDT7Server != "" {
		host, p, err := net.SplitHostPort(agent.NDT7Server)
		if err != nil {
			return nil
		}
		port, _ = strconv.Atoi(p)
		r.Why = why + "RADAR_NDT7_SERVER pins the server."
		r.Domains = []string{host}
		r.Ports = []int{port}
		r.When = "RADAR_TESTS includes ndt7 (server pinned by RADAR_NDT7_SERVER)"
		kind := ProbeTCP
		if tls {
			kind = ProbeTLS
		}
		r.Checks = []Probe{{Kind: kind, Host: host, Port: port, CAFile: agent.NDT7CAFile, Direct: true, UserAgent: agentUA()}}
		return r
	}
	r.Why = why + "M-Lab locate picks the nearest healthy server for each test, so the host changes from test " +
		"to test; every one of them is under the wildcard domain."
	r.Domains = []string{NDT7Domain}
	r.Ports = []int{port}
	r.Checks = []Probe{{Kind: ProbeNDT7Locate, URL: locateNearest(o.locateURL), Scheme: scheme, CAFile: agent.NDT7CAFile, Direct: true, UserAgent: agentUA()}}
	return r
}

func ooklaAPIRow(o options) *Requirement {
	u, err := url.Parse(o.ooklaServerList)
	if err != nil {
		return nil
	}
	listHost, listPort, listTLS := hostPort(u)
	return &Requirement{
		ID:      RowOoklaAPI,
		Service: "Ookla speedtest.net",
		Why: "The Ookla CLI fetches its configuration and the list of nearby servers from speedtest.net and " +
			"reports its result there (the result URL it prints is on www.speedtest.net). The CLI is " +
			"proprietary: these are the hosts it is known to reach besides the test servers.",
		Domains:  appendUnique([]string{"www.speedtest.net"}, listHost),
		Protocol: "HTTPS",
		Ports:    appendUniqueInt([]int{443}, listPort),
		TLS:      listTLS,
		Who:      []string{WhoAgent},
		Required: true,
		When:     "RADAR_TESTS includes ookla",
		Checks: []Probe{
			{Kind: ProbeTLS, Host: "www.speedtest.net", Port: 443, UserAgent: agentUA()},
			{Kind: ProbeHTTP, Host: listHost, Port: listPort, URL: o.ooklaServerList, Expect: []int{200}, Body: BodyOoklaList, MaxBytes: 4 << 20, UserAgent: agentUA()},
		},
	}
}

func ooklaRow(agent config.Agent, o options) *Requirement {
	return &Requirement{
		ID:      RowOokla,
		Service: "Ookla speed test servers",
		Why: "The Ookla test measures against the nearest Ookla server. Servers are hosted by many " +
			"organisations under their own domains, so there is no single domain to allow; for a pod in a " +
			"known place, the list below names the servers near it.",
		DomainsNote: "the nearest servers listed at " + o.ooklaServerList,
		Protocol:    "Ookla test protocol over TCP",
		Ports:       []int{8080, 5060},
		TLS:         true,
		TLSNote: "assumed: the CLI is proprietary, but Ookla requires a TLS certificate on every test server. " +
			"check-network only connects to these ports: it does not guess at the protocol.",
		Who:      []string{WhoAgent},
		Required: true,
		When:     "RADAR_TESTS includes ookla",
		Checks: []Probe{{
			Kind: ProbeOoklaServers, URL: o.ooklaServerList, Ports: []int{8080, 5060},
			OoklaBin: agent.OoklaBin, Direct: true, UserAgent: agentUA(),
		}},
	}
}

func crlRow(updater config.Updater) *Requirement {
	u, err := url.Parse(updater.CRLURL)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	host, port, tls := hostPort(u)
	return &Requirement{
		ID:      RowCRL,
		Service: "Certificate revocation list (Google Cloud Storage)",
		Why: "Before installing an update the updater downloads the release CRL, signed by the root CA, to " +
			"make sure the certificate that signed the new image was not revoked. An unreachable CRL makes " +
			"the updater refuse the update (fail closed); the running agent keeps working.",
		Domains:  []string{host},
		Protocol: "HTTPS",
		Ports:    []int{port},
		TLS:      tls,
		Who:      []string{WhoUpdater},
		Required: true,
		When:     "the updater runs (docker compose deployments; balena fleets update through the balena supervisor)",
		Checks: []Probe{{
			Kind: ProbeHTTP, Host: host, Port: port, URL: updater.CRLURL,
			Expect: []int{200}, Body: BodyCRL, MaxBytes: 4 << 20, UserAgent: updaterUA(),
		}},
	}
}

// registryHosts are the extra hosts well-known registries send clients to:
// the token service and the CDN that serves layers.
var registryHosts = map[string]struct {
	api, token, blobs string
}{
	"docker.io": {api: "registry-1.docker.io", token: "auth.docker.io", blobs: "production.cloudflare.docker.com"},
	"ghcr.io":   {api: "ghcr.io", blobs: "pkg-containers.githubusercontent.com"},
}

func registryRow(updater config.Updater) *Requirement {
	named, err := reference.ParseNormalizedNamed(updater.AgentImage)
	if err != nil {
		return nil
	}
	domain, repo := reference.Domain(named), reference.Path(named)
	r := &Requirement{
		ID:      RowRegistry,
		Service: "Container registry (" + domain + ")",
		Why: "The updater resolves the announced version to a digest and verifies its signature in the " +
			"registry; the Docker engine on the host pulls the image layers (RADAR_AGENT_IMAGE: " +
			named.Name() + ").",
		Protocol: "HTTPS",
		TLS:      true,
		Who:      []string{WhoUpdater, WhoHost},
		Required: true,
		When:     "the updater runs (docker compose deployments; balena fleets update through the balena supervisor)",
	}
	v2 := []int{200, 401}
	if known, ok := registryHosts[domain]; ok {
		r.Domains = append(r.Domains, known.api)
		r.Checks = append(r.Checks, Probe{Kind: ProbeHTTP, Host: known.api, Port: 443, URL: "https://" + known.api + "/v2/", Expect: v2, MaxBytes: 64 << 10, UserAgent: updaterUA()})
		if known.token != "" {
			r.Domains = append(r.Domains, known.token)
			tokenURL := url.URL{Scheme: "https", Host: known.token, Path: "/token",
				RawQuery: url.Values{"service": {"registry.docker.io"}, "scope": {"repository:" + repo + ":pull"}}.Encode()}
			r.Checks = append(r.Checks, Probe{Kind: ProbeHTTP, Host: known.token, Port: 443, URL: tokenURL.String(), Expect: []int{200}, MaxBytes: 64 << 10, UserAgent: updaterUA()})
		}
		r.Domains = append(r.Domains, known.blobs)
		r.Checks = append(r.Checks, Probe{Kind: ProbeTLS, Host: known.blobs, Port: 443, UserAgent: updaterUA()})
		r.Ports = []int{443}
		return r
	}
	host, port := domain, 443
	scheme := "https"
	if h, p, err := net.SplitHostPort(domain); err == nil {
		host = h
		port, _ = strconv.Atoi(p)
	}
	// Docker talks plain HTTP to registries on loopback (insecure by default).
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		scheme = "http"
		r.Protocol = "HTTP"
		r.TLS = false
		if port == 443 {
			port = 80
		}
	}
	r.Domains = []string{host}
	r.DomainsNote = "plus any storage host the registry redirects layer downloads to"
	r.Ports = []int{port}
	r.Checks = []Probe{{Kind: ProbeHTTP, Host: host, Port: port, URL: scheme + "://" + domain + "/v2/", Expect: v2, MaxBytes: 64 << 10, UserAgent: updaterUA()}}
	return r
}

// aptRepos are the repositories of Debian and Raspberry Pi OS, with a
// Release file every mirror and APT cache serves (directory listings are
// not: caches answer 404). Raspberry Pi's archive has no "stable" alias;
// it keeps old suites, so bookworm stays valid.
var aptRepos = []struct{ host, path string }{
	{"deb.debian.org", "/debian/dists/stable/Release"},
	{"security.debian.org", "/debian-security/dists/stable-security/Release"},
	{"archive.raspberrypi.org", "/debian/dists/bookworm/Release"},
}

func aptRow() *Requirement {
	r := &Requirement{
		ID:      RowAPT,
		Service: "Debian and Raspberry Pi OS package repositories",
		Why: "The host's operating system installs security updates from its package repositories. The " +
			"containers do not need them; this row is informational and does not fail check-network.",
		Protocol: "HTTP",
		Ports:    []int{80},
		TLS:      false,
		TLSNote:  "APT checks the signatures of everything it downloads",
		Who:      []string{WhoHost},
		Required: false,
		When:     "the host runs Debian or Raspberry Pi OS and updates its packages",
	}
	for _, repo := range aptRepos {
		r.Domains = append(r.Domains, repo.host)
		// APT has its own proxy setting: the pod's HTTPS_PROXY says nothing
		// about the host's.
		r.Checks = append(r.Checks, Probe{Kind: ProbeHTTP, Host: repo.host, Port: 80, URL: "http://" + repo.host + repo.path, Expect: []int{200}, Body: BodyAptRelease, MaxBytes: 4 << 10, Direct: true, UserAgent: agentUA()})
	}
	return r
}

// hostPort returns a URL's host, its port (explicit or the scheme's
// default) and whether the scheme is encrypted.
func hostPort(u *url.URL) (string, int, bool) {
	tls := u.Scheme == "https" || u.Scheme == "wss"
	port := 80
	if tls {
		port = 443
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		port = p
	}
	return u.Hostname(), port, tls
}

func locateNearest(base string) string {
	return strings.TrimRight(base, "/") + "/ndt/ndt7"
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func appendUniqueInt(list []int, n int) []int {
	if slices.Contains(list, n) {
		return list
	}
	return append(list, n)
}

func agentUA() string   { return buildinfo.AgentUserAgent() }
func updaterUA() string { return buildinfo.UpdaterUserAgent() }

// checkUA is who asks the pods service's root. It must not start with
// "RadarPods": the service treats such a user agent as a pod's.
func checkUA() string { return "RadarNetworkCheck/" + buildinfo.Version }

func uaFor(who string) string {
	if who == WhoUpdater {
		return updaterUA()
	}
	return agentUA()
}

// Describe says in a sentence what the probe does, for the Markdown table.
func (p Probe) Describe() string {
	statuses := func() string {
		if len(p.Expect) == 0 {
			return "any HTTP answer below 500"
		}
		s := make([]string, len(p.Expect))
		for i, c := range p.Expect {
			s[i] = strconv.Itoa(c)
		}
		return "HTTP " + strings.Join(s, " or ")
	}
	hp := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	switch p.Kind {
	case ProbeTCP:
		return "TCP connect to " + hp
	case ProbeTLS:
		return "TLS handshake with " + hp + ", certificate verified"
	case ProbeHTTP:
		d := "GET " + p.URL + " expecting " + statuses()
		if p.Redirect != "" {
			d += " to " + p.Redirect + " on the same host"
		}
		switch p.Body {
		case BodyCRL:
			d += " and a CRL in the body"
		case BodyLocate:
			d += " and a list of servers"
		case BodyOoklaList:
			d += " and a server list"
		case BodyAptRelease:
			d += " and a Release file (its first 4 KiB)"
		}
		if p.Note != "" {
			d += " (" + p.Note + ")"
		}
		return d
	case ProbeNDT7Locate:
		how := "a TLS handshake on port 443 for wss, a TCP connect on port 80 for ws"
		switch p.Scheme {
		case "wss":
			how = "a TLS handshake on port 443 (wss)"
		case "ws":
			how = "a TCP connect on port 80 (ws)"
		}
		return "asks locate (" + p.URL + ") for the nearest servers, then " + how + " with each of them; one reachable server is enough"
	case ProbeOoklaServers:
		ports := make([]string, len(p.Ports))
		for i, n := range p.Ports {
			ports[i] = strconv.Itoa(n)
		}
		return "lists the nearest servers (`" + p.OoklaBin + " --servers` when the CLI is installed, else " + p.URL +
			"), then a TCP connect to each on ports " + strings.Join(ports, " and ") + "; each port must reach at least one server"
	}
	return fmt.Sprintf("%s %s", p.Kind, hp)
}
