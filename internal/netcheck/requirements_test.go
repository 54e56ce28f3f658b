package netcheck

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/speedtest/ndt7"
)

func mustRequirements(t *testing.T, environ map[string]string, opts ...Option) map[string]Requirement {
	t.Helper()
	agent, updater, err := LoadConfig(environ)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Requirement{}
	for _, r := range Requirements(agent, updater, opts...) {
		if _, dup := m[r.ID]; dup {
			t.Fatalf("row ID %s twice", r.ID)
		}
		m[r.ID] = r
	}
	return m
}

func TestRequirementsFollowConfiguration(t *testing.T) {
	aesScheme, _ := ndt7.ChooseScheme("auto")
	autoPort := map[string]int{"wss": 443, "ws": 80}[aesScheme]
	tests := []struct {
		name    string
		env     map[string]string
		rows    []string
		check   func(t *testing.T, rows map[string]Requirement)
		without []string
	}{
		{
			name: "defaults",
			env:  map[string]string{},
			rows: []string{RowPods, RowLocate, RowNDT7, RowOoklaAPI, RowOokla, RowCRL, RowRegistry, RowAPT},
			check: func(t *testing.T, rows map[string]Requirement) {
				pods := rows[RowPods]
				wantRow(t, pods, []string{"radar.exactlylabs.com"}, []int{443}, true, []string{WhoAgent}, true)
				// The service's root, never its channel; behind the
				// certificate any answer below 500 proves it.
				if c := pods.Checks[0]; c.Kind != ProbeHTTP || c.URL != "https://radar.exactlylabs.com/" || c.Expect != nil || c.Redirect != "" {
					t.Errorf("pods check %+v", c)
				}
				if pods.Protocol != "HTTPS and WebSocket (wss)" {
					t.Errorf("pods protocol %q", pods.Protocol)
				}
				wantRow(t, rows[RowLocate], []string{"locate.measurementlab.net"}, []int{443}, true, []string{WhoAgent}, true)
				ndt := rows[RowNDT7]
				// The scheme is this CPU's choice, and the row says why.
				wantRow(t, ndt, []string{NDT7Domain}, []int{autoPort}, aesScheme == "wss", []string{WhoAgent}, true)
				if !strings.Contains(ndt.TLSNote, "auto: CPU") || ndt.Checks[0].Scheme != aesScheme {
					t.Errorf("ndt7 row does not carry the CPU's choice: %+v", ndt)
				}
				wantRow(t, rows[RowOokla], nil, []int{8080, 5060}, true, []string{WhoAgent}, true)
				if !strings.Contains(rows[RowOokla].DomainsNote, DefaultOoklaServerList) || rows[RowOokla].Checks[0].OoklaBin != "speedtest" {
					t.Errorf("ookla row %+v", rows[RowOokla])
				}
				wantRow(t, rows[RowCRL], []string{"storage.googleapis.com"}, []int{443}, true, []string{WhoUpdater}, true)
				wantRow(t, rows[RowRegistry], []string{"ghcr.io", "pkg-containers.githubusercontent.com"}, []int{443}, true, []string{WhoUpdater, WhoHost}, true)
				wantRow(t, rows[RowAPT], []string{"deb.debian.org", "security.debian.org", "archive.raspberrypi.org"}, []int{80}, false, []string{WhoHost}, false)
				if !strings.Contains(rows[RowAPT].TLSNote, "signatures") {
					t.Errorf("apt TLS note %q", rows[RowAPT].TLSNote)
				}
			},
			without: []string{RowSentry},
		},
		{
			name:    "standalone has no pods service",
			env:     map[string]string{"RADAR_SERVER_URL": ""},
			without: []string{RowPods},
		},
		{
			name: "server URL with a port and plain HTTP",
			env:  map[string]string{"RADAR_SERVER_URL": "http://radar.example.org:3000", "RADAR_ALLOW_INSECURE_SERVER": "true"},
			check: func(t *testing.T, rows map[string]Requirement) {
				wantRow(t, rows[RowPods], []string{"radar.example.org"}, []int{3000}, false, []string{WhoAgent}, true)
				// Without TLS only the service's own redirect proves it.
				if c := rows[RowPods].Checks[0]; c.Kind != ProbeHTTP || c.URL != "http://radar.example.org:3000/" ||
					!slices.Equal(c.Expect, []int{301, 302}) || c.Redirect != "/users/sign_in" {
					t.Errorf("pods check %+v", c)
				}
				if p := rows[RowPods].Protocol; p != "HTTP and WebSocket (ws)" {
					t.Errorf("pods protocol %q", p)
				}
			},
		},
		{
			name: "sentry from the DSN, without its key",
			env:  map[string]string{"SENTRY_DSN": "https://abcdef0123456789@o1197382.ingest.sentry.io/6000001"},
			check: func(t *testing.T, rows map[string]Requirement) {
				s := rows[RowSentry]
				wantRow(t, s, []string{"o1197382.ingest.sentry.io"}, []int{443}, true, []string{WhoAgent, WhoUpdater}, true)
				if s.Checks[0].URL != "https://o1197382.ingest.sentry.io/api/6000001/envelope/" {
					t.Errorf("sentry check %+v", s.Checks[0])
				}
			},
		},
		{
			name:    "ndt7 only",
			env:     map[string]string{"RADAR_TESTS": "ndt7"},
			rows:    []string{RowLocate, RowNDT7},
			without: []string{RowOokla, RowOoklaAPI},
		},
		{
			name:    "ookla only",
			env:     map[string]string{"RADAR_TESTS": "ookla"},
			rows:    []string{RowOokla, RowOoklaAPI},
			without: []string{RowLocate, RowNDT7},
		},
		{
			name: "pinned ndt7 server over ws",
			env:  map[string]string{"RADAR_NDT7_SERVER": "ndt.example.org:8080", "RADAR_NDT7_SCHEME": "ws"},
			check: func(t *testing.T, rows map[string]Requirement) {
				ndt := rows[RowNDT7]
				wantRow(t, ndt, []string{"ndt.example.org"}, []int{8080}, false, []string{WhoAgent}, true)
				if ndt.Checks[0].Kind != ProbeTCP || !strings.Contains(ndt.TLSNote, "RADAR_NDT7_SCHEME=ws") {
					t.Errorf("ndt7 row %+v", ndt)
				}
			},
			without: []string{RowLocate},
		},
		{
			name: "wss forced",
			env:  map[string]string{"RADAR_NDT7_SCHEME": "wss"},
			check: func(t *testing.T, rows map[string]Requirement) {
				wantRow(t, rows[RowNDT7], []string{NDT7Domain}, []int{443}, true, []string{WhoAgent}, true)
			},
		},
		{
			name: "Docker Hub image",
			env:  map[string]string{"RADAR_AGENT_IMAGE": "radarpod/radar-agent"},
			check: func(t *testing.T, rows map[string]Requirement) {
				reg := rows[RowRegistry]
				wantRow(t, reg, []string{"registry-1.docker.io", "auth.docker.io", "production.cloudflare.docker.com"}, []int{443}, true, []string{WhoUpdater, WhoHost}, true)
				if !strings.Contains(reg.Checks[1].URL, "scope=repository%3Aradarpod%2Fradar-agent%3Apull") {
					t.Errorf("token check %+v", reg.Checks[1])
				}
			},
		},
		{
			name: "private registry with a port",
			env:  map[string]string{"RADAR_AGENT_IMAGE": "registry.example.org:5000/pods/agent", "RADAR_CRL_URL": "https://crl.example.org:8443/root.crl"},
			check: func(t *testing.T, rows map[string]Requirement) {
				wantRow(t, rows[RowRegistry], []string{"registry.example.org"}, []int{5000}, true, []string{WhoUpdater, WhoHost}, true)
				if rows[RowRegistry].Checks[0].URL != "https://registry.example.org:5000/v2/" {
					t.Errorf("registry check %+v", rows[RowRegistry].Checks[0])
				}
				wantRow(t, rows[RowCRL], []string{"crl.example.org"}, []int{8443}, true, []string{WhoUpdater}, true)
			},
		},
		{
			name: "loopback registry is plain HTTP",
			env:  map[string]string{"RADAR_AGENT_IMAGE": "127.0.0.1:5000/pods/agent"},
			check: func(t *testing.T, rows map[string]Requirement) {
				wantRow(t, rows[RowRegistry], []string{"127.0.0.1"}, []int{5000}, false, []string{WhoUpdater, WhoHost}, true)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := mustRequirements(t, tt.env)
			for _, id := range tt.rows {
				if _, ok := rows[id]; !ok {
					t.Errorf("row %s missing", id)
				}
			}
			for _, id := range tt.without {
				if _, ok := rows[id]; ok {
					t.Errorf("row %s present", id)
				}
			}
			for id, r := range rows {
				if r.Service == "" || r.Why == "" || r.Protocol == "" || len(r.Ports) == 0 || len(r.Who) == 0 || r.When == "" || len(r.Checks) == 0 {
					t.Errorf("row %s incomplete: %+v", id, r)
				}
				if len(r.Domains) == 0 && r.DomainsNote == "" {
					t.Errorf("row %s names no domain", id)
				}
			}
			if tt.check != nil {
				tt.check(t, rows)
			}
		})
	}
}

// TestPodsCheckIsNeverAPod: whatever the server URL, the pods row's check
// is a GET of the service's root that the service does not take for a
// pod's: not the channel, and a User-Agent that does not start with
// RadarPods (the service treats only those as pods).
func TestPodsCheckIsNeverAPod(t *testing.T) {
	for _, server := range []string{"https://radar.exactlylabs.com", "http://127.0.0.1:3000", "https://radar.example.org/pods/"} {
		rows := mustRequirements(t, map[string]string{"RADAR_SERVER_URL": server})
		for _, c := range rows[RowPods].Checks {
			if c.Kind != ProbeHTTP || strings.Contains(c.URL, "/api/") || strings.HasPrefix(c.UserAgent, "RadarPods") || c.UserAgent == "" {
				t.Errorf("%s: pods check %+v looks like a pod or asks its API", server, c)
			}
		}
	}
	rows := mustRequirements(t, map[string]string{"RADAR_SERVER_URL": "http://radar.example.org/pods/", "RADAR_ALLOW_INSECURE_SERVER": "true"})
	if c := rows[RowPods].Checks[0]; c.URL != "http://radar.example.org/pods/" || c.Redirect != "/pods/users/sign_in" {
		t.Errorf("a service below a prefix: check %+v", c)
	}
}

func wantRow(t *testing.T, r Requirement, domains []string, ports []int, tls bool, who []string, required bool) {
	t.Helper()
	if r.ID == "" {
		t.Errorf("row missing (want domains %v)", domains)
		return
	}
	if !slices.Equal(r.Domains, domains) || !slices.Equal(r.Ports, ports) || r.TLS != tls || !slices.Equal(r.Who, who) || r.Required != required {
		t.Errorf("row %s: domains %v ports %v tls %v who %v required %v\nwant domains %v ports %v tls %v who %v required %v",
			r.ID, r.Domains, r.Ports, r.TLS, r.Who, r.Required, domains, ports, tls, who, required)
	}
}

func TestGenericDescribesEveryChoice(t *testing.T) {
	rows := mustRequirements(t, map[string]string{}, Generic())
	ndt := rows[RowNDT7]
	if !slices.Equal(ndt.Ports, []int{443, 80}) || !strings.Contains(ndt.TLSNote, "AES") {
		t.Errorf("generic ndt7 row should list both schemes and why: %+v", ndt)
	}
	s, ok := rows[RowSentry]
	if !ok || !strings.Contains(s.DomainsNote, "SENTRY_DSN") || s.When != "SENTRY_DSN is set" {
		t.Errorf("generic sentry row %+v", s)
	}
}

func TestRenderNeverLeaksTheDSNKey(t *testing.T) {
	const key = "abcdef0123456789"
	agent, updater, err := LoadConfig(map[string]string{"SENTRY_DSN": "https://" + key + "@o1.ingest.sentry.io/42"})
	if err != nil {
		t.Fatal(err)
	}
	reqs := Requirements(agent, updater)
	var md, js bytes.Buffer
	if err := RenderMarkdown(&md, reqs); err != nil {
		t.Fatal(err)
	}
	if err := RenderJSON(&js, reqs); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"markdown": md.String(), "json": js.String()} {
		if strings.Contains(out, key) {
			t.Errorf("%s output contains the DSN key", name)
		}
		if !strings.Contains(out, "o1.ingest.sentry.io") {
			t.Errorf("%s output lacks the Sentry host", name)
		}
	}
	var back []Requirement
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != len(reqs) || back[0].ID != reqs[0].ID {
		t.Errorf("JSON does not round-trip: %v", err)
	}
}

func TestMatchDomain(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{NDT7Domain, "ndt-mlab1-lga03.mlab-oti.measurement-lab.org", true},
		{NDT7Domain, "NDT-mlab1-lga03.mlab-oti.measurement-lab.org.", true},
		{NDT7Domain, "mlab-oti.measurement-lab.org", false},
		{NDT7Domain, "evil-mlab-oti.measurement-lab.org", false},
		{"deb.debian.org", "deb.debian.org", true},
	}
	for _, tt := range tests {
		if got := matchDomain(tt.pattern, tt.host); got != tt.want {
			t.Errorf("matchDomain(%q, %q) = %v", tt.pattern, tt.host, got)
		}
	}
}
