package netcheck

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/telemetry"
)

var allRows = []string{RowPods, RowSentry, RowLocate, RowNDT7, RowOoklaAPI, RowOokla, RowCRL, RowRegistry, RowAPT}

func TestCheckPassesAgainstRealPeers(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "127.0.0.1")
	code, report, stderr := w.run(t)
	if code != ExitOK || !report.OK() {
		t.Fatalf("exit %d, want 0; failing rows %v\nstderr: %s\n%+v", code, failedIDs(report), stderr, report)
	}
	rows := rowsByID(report)
	for _, id := range allRows {
		if rows[id].Verdict != Pass {
			t.Errorf("row %s: %s (%s: %s)", id, rows[id].Verdict, rows[id].Step, rows[id].Hint)
		}
	}
	if len(report.Rows) != len(allRows) {
		t.Errorf("rows %v, want %v", failedIDs(report), allRows)
	}

	// Each row's evidence is the step that proves the real service
	// answered, not merely a connect.
	evidence := map[string]string{
		RowPods: "HTTP 301 Moved Permanently to https://pods.test:", RowSentry: "HTTP 405", RowLocate: "HTTP 200", RowCRL: "HTTP 200", RowRegistry: "HTTP 200", RowAPT: "HTTP 200",
	}
	for id, want := range evidence {
		if !probeDetailContains(rows[id], want) {
			t.Errorf("row %s: no step says %q: %+v", id, want, rows[id].Probes)
		}
	}
	if !probeDetailContains(rows[RowPods], `issued by "Radar Test Root CA"`) {
		t.Errorf("pods: TLS step does not name the verified issuer: %+v", rows[RowPods].Probes)
	}

	// ndt7: locate was asked, its first server is gone, the second is
	// checked with a TLS handshake; one reachable server is enough.
	ndt := rows[RowNDT7]
	targets := probeTargets(ndt)
	if !slices.Contains(targets, fmt.Sprintf("ndt1.test:%d", w.port["ndt7-wss"])) || !slices.Contains(targets, "ndt-gone.test:443") {
		t.Errorf("ndt7 targets %v, want the servers locate named", targets)
	}
	for _, p := range ndt.Probes {
		if p.Target == "ndt-gone.test:443" && (p.OK || p.Step != StepDNS) {
			t.Errorf("the vanished ndt7 server should fail at DNS: %+v", p)
		}
	}
	if len(ndt.Notes) == 0 || !strings.Contains(strings.Join(ndt.Notes, " "), "outside the documented domain") {
		t.Errorf("ndt7 notes %v: servers outside *.mlab-oti.measurement-lab.org should be noted", ndt.Notes)
	}

	// Ookla: no CLI installed, so the static list named the servers, and
	// both were checked on both ports.
	ook := rows[RowOokla]
	got := probeTargets(ook)
	for _, want := range []string{"ookla1.test:8080", "ookla1.test:5060", "ookla2.test:8080", "ookla2.test:5060"} {
		if !slices.Contains(got, want) {
			t.Errorf("ookla targets %v lack %s", got, want)
		}
	}
	if !strings.Contains(strings.Join(ook.Notes, " "), "not installed") {
		t.Errorf("ookla notes %v should say the CLI is missing", ook.Notes)
	}

	// The pods service was asked for its root (podsHandler fails the test
	// on anything pod-like), and Sentry's key never left the pod.
	if !slices.Contains(w.seen(), fmt.Sprintf("pods.test:%d /", w.port["pods"])) {
		t.Errorf("the pods service's root was not requested: %v", w.seen())
	}
	for _, req := range w.seen() {
		if strings.Contains(req, "sentrykey") {
			t.Errorf("the DSN key was sent: %s", req)
		}
	}
	if !slices.ContainsFunc(w.seen(), func(s string) bool { return strings.Contains(s, "/api/42/envelope/") }) {
		t.Errorf("sentry endpoint not requested: %v", w.seen())
	}
}

func TestTableOutput(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "127.0.0.1")
	w.env["RADAR_CRL_URL"] = fmt.Sprintf("https://crl.test:%d/x.crl", w.closedPort())
	var stdout, stderr bytes.Buffer
	code := checkCommand(context.Background(), nil, w.env, &stdout, &stderr, w.options(3*time.Second), w.reqOptions()...)
	out := stdout.String()
	if code != ExitFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, stderr.String())
	}
	for _, want := range []string{"ROW", "VERDICT", "STEP", "pods", "PASS", "crl", "FAIL", "tcp", "connection refused on port", "FAIL: 1 of 8 required rows cannot be reached: crl."} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sentrykey") || strings.Contains(stderr.String(), "sentrykey") {
		t.Errorf("output leaks the DSN key:\n%s", out)
	}
}

// TestFailures breaks one thing at a time and expects exactly the rows it
// affects to fail, at the right step, with the hint an installer needs.
func TestFailures(t *testing.T) {
	t.Parallel()
	type want struct{ step, hint string }
	tests := []struct {
		name  string
		setup func(w *world)
		fails map[string]want
		code  int
		// verify checks more than the verdicts.
		verify func(t *testing.T, w *world, rows map[string]RowResult)
	}{
		{
			name:  "DNS name does not exist",
			setup: func(w *world) { w.env["RADAR_SERVER_URL"] = fmt.Sprintf("https://nopods.test:%d", w.port["pods"]) },
			fails: map[string]want{RowPods: {StepDNS, "DNS failed: no such host nopods.test"}},
			code:  ExitFailed,
		},
		{
			name:  "DNS server never answers",
			setup: func(w *world) { w.dns.hush("crl.test") },
			fails: map[string]want{RowCRL: {StepDNS, "DNS failed: timed out resolving crl.test"}},
			code:  ExitFailed,
		},
		{
			name: "connection refused",
			setup: func(w *world) {
				w.env["SENTRY_DSN"] = fmt.Sprintf("https://sentrykey0123456789@sentry.test:%d/42", w.closedPort())
			},
			fails: map[string]want{RowSentry: {StepTCP, "connection refused on port"}},
			code:  ExitFailed,
		},
		{
			name: "TLS intercepted by an unknown CA",
			setup: func(w *world) {
				rogue := newCA(w.t, "Evil Inspection CA")
				port := w.serveTLSCert(rogue.issue(w.t, "pods.test"), podsHandler(w.t))
				w.env["RADAR_SERVER_URL"] = fmt.Sprintf("https://pods.test:%d", port)
			},
			fails: map[string]want{RowPods: {StepTLS, `TLS intercepted: certificate issued by "Evil Inspection CA", not a trusted CA`}},
			code:  ExitFailed,
		},
		{
			name: "certificate for another name",
			setup: func(w *world) {
				port := w.serveTLSCert(w.ca.issue(w.t, "portal.example"), http.NotFoundHandler())
				w.env["RADAR_CRL_URL"] = fmt.Sprintf("https://crl.test:%d/rootCRL.crl.pem", port)
			},
			fails: map[string]want{RowCRL: {StepTLS, "the certificate is for portal.example"}},
			code:  ExitFailed,
		},
		{
			name: "captive portal answers plain HTTP on the TLS port",
			setup: func(w *world) {
				port := w.servePlain(http.RedirectHandler("http://portal.example/login", http.StatusFound))
				w.env["RADAR_SERVER_URL"] = fmt.Sprintf("https://pods.test:%d", port)
			},
			fails: map[string]want{RowPods: {StepTLS, "did not answer with TLS"}},
			code:  ExitFailed,
		},
		{
			name: "pods service port refused",
			setup: func(w *world) {
				w.env["RADAR_SERVER_URL"] = fmt.Sprintf("https://pods.test:%d", w.closedPort())
			},
			fails: map[string]want{RowPods: {StepTCP, "connection refused on port"}},
			code:  ExitFailed,
		},
		{
			// Without TLS, only the service's own redirect proves it.
			name: "captive portal redirects the pods service's root",
			setup: func(w *world) {
				port := w.servePlain(http.RedirectHandler("http://portal.example/login", http.StatusFound))
				w.env["RADAR_SERVER_URL"] = fmt.Sprintf("http://pods.test:%d", port)
				w.env["RADAR_ALLOW_INSECURE_SERVER"] = "true" // plain HTTP to a named host, on purpose
			},
			fails: map[string]want{RowPods: {StepHTTP, "HTTP 302 Found from pods.test redirecting to http://portal.example/login (a captive portal or a proxy?)"}},
			code:  ExitFailed,
		},
		{
			name: "a page instead of the pods service's redirect over plain HTTP",
			setup: func(w *world) {
				port := w.servePlain(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
					io.WriteString(rw, "<html>Welcome! Accept the terms to continue.</html>")
				}))
				w.env["RADAR_SERVER_URL"] = fmt.Sprintf("http://pods.test:%d", port)
				w.env["RADAR_ALLOW_INSECURE_SERVER"] = "true" // plain HTTP to a named host, on purpose
			},
			fails: map[string]want{RowPods: {StepHTTP, "HTTP 200 OK from pods.test, not the redirect to /users/sign_in that proves the service"}},
			code:  ExitFailed,
		},
		{
			name: "pods service failing behind its certificate",
			setup: func(w *world) {
				port := w.serveTLS("pods.test", http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
					http.Error(rw, "bad gateway", http.StatusBadGateway)
				}))
				w.env["RADAR_SERVER_URL"] = fmt.Sprintf("https://pods.test:%d", port)
			},
			fails: map[string]want{RowPods: {StepHTTP, "HTTP 502 Bad Gateway from pods.test"}},
			code:  ExitFailed,
		},
		{
			name: "pods service answering nothing after the handshake",
			setup: func(w *world) {
				port := w.serveTLS("pods.test", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
					<-r.Context().Done()
				}))
				w.env["RADAR_SERVER_URL"] = fmt.Sprintf("https://pods.test:%d", port)
			},
			fails: map[string]want{RowPods: {StepHTTP, "no HTTP answer from pods.test in time after connecting"}},
			code:  ExitFailed,
		},
		{
			name: "TLS handshake held by a middlebox",
			setup: func(w *world) {
				w.env["RADAR_NDT7_SERVER"] = fmt.Sprintf("ndt1.test:%d", w.hang())
			},
			fails: map[string]want{RowNDT7: {StepTLS, "TLS handshake with ndt1.test timed out"}},
			code:  ExitFailed,
		},
		{
			name: "HTTP 503",
			setup: func(w *world) {
				port := w.serveTLS("crl.test", http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
					http.Error(rw, "down", http.StatusServiceUnavailable)
				}))
				w.env["RADAR_CRL_URL"] = fmt.Sprintf("https://crl.test:%d/rootCRL.crl.pem", port)
			},
			fails: map[string]want{RowCRL: {StepHTTP, "HTTP 503 Service Unavailable from crl.test"}},
			code:  ExitFailed,
		},
		{
			name: "a page that is not a CRL",
			setup: func(w *world) {
				port := w.serveTLS("crl.test", http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
					io.WriteString(rw, "<html>Welcome to the hotel wifi</html>")
				}))
				w.env["RADAR_CRL_URL"] = fmt.Sprintf("https://crl.test:%d/rootCRL.crl.pem", port)
			},
			fails: map[string]want{RowCRL: {StepHTTP, "the body is not a CRL"}},
			code:  ExitFailed,
		},
		{
			name: "no registry API",
			setup: func(w *world) {
				port := w.serveTLS("registry.test", http.NotFoundHandler())
				w.env["RADAR_AGENT_IMAGE"] = fmt.Sprintf("registry.test:%d/radarpod/radar-agent", port)
			},
			fails: map[string]want{RowRegistry: {StepHTTP, "HTTP 404 Not Found from registry.test"}},
			code:  ExitFailed,
		},
		{
			name: "locate down fails both ndt7 rows",
			setup: func(w *world) {
				port := w.serveTLS("locate.test", http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
					http.Error(rw, "overloaded", http.StatusServiceUnavailable)
				}))
				w.locateURL = fmt.Sprintf("https://locate.test:%d/v2/nearest/", port)
			},
			fails: map[string]want{
				RowLocate: {StepHTTP, "HTTP 503 Service Unavailable from locate.test"},
				RowNDT7:   {StepHTTP, "asking M-Lab locate for servers: HTTP 503"},
			},
			code: ExitFailed,
		},
		{
			name:  "one Ookla port closed on every server",
			setup: func(w *world) { w.route(5060, w.closedPort()) },
			fails: map[string]want{RowOokla: {StepTCP, "none of 2 servers reachable on port 5060: connection refused on port 5060"}},
			code:  ExitFailed,
		},
		{
			// One server is the whole group: the hint must still say it
			// failed ("the server reachable on port 5060" said the opposite).
			name: "one Ookla port closed on the only server listed",
			setup: func(w *world) {
				port := w.serveTLS("speedtest-list.test", http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
					io.WriteString(rw, `<settings><servers><server url="http://ookla1.test:8080/speedtest/upload.php" id="1" host="ookla1.test:8080" /></servers></settings>`)
				}))
				w.ooklaListURL = fmt.Sprintf("https://speedtest-list.test:%d/speedtest-servers-static.php", port)
				w.route(5060, w.closedPort())
			},
			fails: map[string]want{RowOokla: {StepTCP, "the one server checked is not reachable on port 5060: connection refused on port 5060"}},
			code:  ExitFailed,
		},
		{
			name: "locate names one ndt7 server and it is gone",
			setup: func(w *world) {
				port := w.serveTLS("locate.test", http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
					io.WriteString(rw, `{"results":[{"machine":"mlab1-gone01","urls":{"wss:///ndt/v7/download":"wss://ndt-gone.test/ndt/v7/download?access_token=a"}}]}`)
				}))
				w.locateURL = fmt.Sprintf("https://locate.test:%d/v2/nearest/", port)
			},
			fails: map[string]want{RowNDT7: {StepDNS, "the one server checked is not reachable: DNS failed: no such host ndt-gone.test (ndt-gone.test:443)"}},
			code:  ExitFailed,
		},
		{
			name: "ws scheme checks port 80 with TCP",
			setup: func(w *world) {
				w.env["RADAR_NDT7_SCHEME"] = "ws"
				w.dns.set(w.ip, "ndt-gone.test")
				w.route(80, w.closedPort())
			},
			// ndt-gone.test:80 is refused (and apt with it), ndt1.test's
			// ws port answers: ndt7 passes on one server.
			fails: map[string]want{RowAPT: {StepTCP, "connection refused on port 80"}},
			code:  ExitOK,
			verify: func(t *testing.T, w *world, rows map[string]RowResult) {
				for _, p := range rows[RowNDT7].Probes[1:] {
					if p.Kind != ProbeTCP {
						t.Errorf("ws targets get a TCP connect, not %s: %+v", p.Kind, p)
					}
				}
				got := probeTargets(rows[RowNDT7])
				if !slices.Contains(got, "ndt-gone.test:80") || !slices.Contains(got, fmt.Sprintf("ndt1.test:%d", w.port["ndt7-ws"])) {
					t.Errorf("ndt7 targets %v, want the ws URLs locate named", got)
				}
			},
		},
		{
			name: "hotel wifi answers every HTTP request with its page",
			setup: func(w *world) {
				w.route(80, w.servePlain(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
					io.WriteString(rw, "<html>Welcome! Accept the terms to continue.</html>")
				})))
			},
			fails: map[string]want{RowAPT: {StepHTTP, "HTTP 200 from deb.debian.org, but the body is not an APT Release file"}},
			code:  ExitOK,
		},
		{
			name:  "informational rows do not fail the check",
			setup: func(w *world) { w.route(80, w.closedPort()) },
			fails: map[string]want{RowAPT: {StepTCP, "connection refused on port 80"}},
			code:  ExitOK,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "127.0.0.1")
			tt.setup(w)
			code, report, stderr := w.run(t)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %s)", code, tt.code, stderr)
			}
			var wantIDs []string
			for id := range tt.fails {
				wantIDs = append(wantIDs, id)
			}
			if got := failedIDs(report); !sameSet(got, wantIDs) {
				t.Errorf("failing rows %v, want exactly %v", got, wantIDs)
			}
			rows := rowsByID(report)
			for id, w := range tt.fails {
				row := rows[id]
				if row.Verdict != Fail || row.Step != w.step || !strings.Contains(row.Hint, w.hint) {
					t.Errorf("row %s: %s at %q: %q\nwant fail at %q with %q", id, row.Verdict, row.Step, row.Hint, w.step, w.hint)
				}
			}
			if tt.verify != nil {
				tt.verify(t, w, rows)
			}
			if report.OK() != (tt.code == ExitOK) {
				t.Errorf("Report.OK() = %v with exit %d", report.OK(), code)
			}
		})
	}
}

// TestPodsServiceRoot: the pods row proves the service by its root, as a
// browser would ask it, in every form the service can be configured in.
func TestPodsServiceRoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		serve    func(w *world) string // the server URL
		evidence string
	}{
		{
			// Without TLS only the redirect to the sign-in page counts,
			// and it did.
			name: "plain HTTP, redirect to the sign-in page",
			serve: func(w *world) string {
				return fmt.Sprintf("http://pods.test:%d", w.servePlain(podsHandler(w.t)))
			},
			evidence: "HTTP 301 Moved Permanently to http://pods.test:",
		},
		{
			// Behind a verified certificate any answer below 500 is the
			// service's, whatever it is.
			name: "HTTPS, another answer behind the verified certificate",
			serve: func(w *world) string {
				return fmt.Sprintf("https://pods.test:%d", w.serveTLS("pods.test", http.NotFoundHandler()))
			},
			evidence: "HTTP 404 Not Found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "127.0.0.1")
			w.env["RADAR_SERVER_URL"] = tt.serve(w)
			w.env["RADAR_ALLOW_INSECURE_SERVER"] = "true" // the plain HTTP case names a host, on purpose
			_, report, _ := w.run(t)
			row := rowsByID(report)[RowPods]
			if row.Verdict != Pass || !probeDetailContains(row, tt.evidence) {
				t.Fatalf("pods: %+v, want a pass on %q", row, tt.evidence)
			}
			want := []string{StepDNS, StepTCP, StepTLS, StepHTTP}
			if strings.HasPrefix(w.env["RADAR_SERVER_URL"], "http:") {
				want = []string{StepDNS, StepTCP, StepHTTP}
			}
			if p := row.Probes[0]; p.Kind != ProbeHTTP || !slices.Equal(stepNames(p), want) {
				t.Errorf("pods probe %+v: want the steps %v", p, want)
			}
		})
	}
}

// A private ndt7 server's CA comes from RADAR_NDT7_CA_FILE, and only the
// ndt7 row trusts it.
func TestNDT7CAFile(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "127.0.0.1")
	private := newCA(t, "Private NDT7 CA")
	port := w.serveTLSCert(private.issue(t, "ndt1.test"), http.NotFoundHandler())
	w.env["RADAR_NDT7_SERVER"] = fmt.Sprintf("ndt1.test:%d", port)

	_, report, _ := w.run(t)
	if row := rowsByID(report)[RowNDT7]; row.Verdict != Fail || !strings.Contains(row.Hint, `issued by "Private NDT7 CA"`) {
		t.Fatalf("without the CA file: %+v", row)
	}
	if _, ok := rowsByID(report)[RowLocate]; ok {
		t.Errorf("a pinned ndt7 server needs no locate row")
	}

	w.env["RADAR_NDT7_CA_FILE"] = private.pemPath
	code, report, stderr := w.run(t)
	if row := rowsByID(report)[RowNDT7]; code != ExitOK || row.Verdict != Pass {
		t.Fatalf("with the CA file: exit %d %+v %s", code, row, stderr)
	}
}

// The Ookla runner would use the servers its CLI names, so the check does.
func TestOoklaServersFromTheCLI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, script string
		wantTargets  []string
		wantNote     string
	}{
		{
			name: "CLI lists servers",
			script: `#!/bin/sh
case " $* " in *" --servers "*) ;; *) echo "unexpected args: $*" >&2; exit 9;; esac
echo '{"type":"serverList","timestamp":"2026-01-01T00:00:00Z","servers":[{"id":1,"host":"cli1.test","port":8080,"name":"A","location":"X","country":"Y"},{"id":2,"host":"cli2.test","port":8080,"name":"B","location":"X","country":"Y"}]}'
`,
			wantTargets: []string{"cli1.test:8080", "cli1.test:5060", "cli2.test:8080", "cli2.test:5060"},
		},
		{
			name: "CLI fails, static list used",
			script: `#!/bin/sh
echo '[error] Limit reached: Too many requests received.' >&2
exit 3
`,
			wantTargets: []string{"ookla1.test:8080", "ookla1.test:5060"},
			wantNote:    "Too many requests received",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "127.0.0.1")
			w.dns.set(w.ip, "cli1.test", "cli2.test")
			bin := filepath.Join(t.TempDir(), "speedtest")
			if err := os.WriteFile(bin, []byte(tt.script), 0o755); err != nil {
				t.Fatal(err)
			}
			w.env["RADAR_OOKLA_BIN"] = bin
			code, report, stderr := w.run(t)
			row := rowsByID(report)[RowOokla]
			if code != ExitOK || row.Verdict != Pass {
				t.Fatalf("exit %d, ookla %+v, %s", code, row, stderr)
			}
			got := probeTargets(row)
			for _, want := range tt.wantTargets {
				if !slices.Contains(got, want) {
					t.Errorf("targets %v lack %s", got, want)
				}
			}
			if tt.wantNote != "" && !strings.Contains(strings.Join(row.Notes, " "), tt.wantNote) {
				t.Errorf("notes %v lack %q", row.Notes, tt.wantNote)
			}
		})
	}
}

// connectProxy is a real HTTP CONNECT proxy that resolves names the way the
// world does and records what it was asked.
type connectProxy struct {
	addr   string
	refuse bool

	mu      sync.Mutex
	targets []string
	auth    []string
}

func startProxy(t *testing.T, w *world, refuse bool) *connectProxy {
	p := &connectProxy{refuse: refuse}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	resolver := resolverFor(w.dns.addr)
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.targets = append(p.targets, r.Host)
		p.auth = append(p.auth, r.Header.Get("Proxy-Authorization"))
		p.mu.Unlock()
		if r.Method != http.MethodConnect || p.refuse {
			http.Error(rw, "forbidden by policy", http.StatusForbidden)
			return
		}
		host, port, _ := net.SplitHostPort(r.Host)
		addrs, err := resolver.LookupHost(r.Context(), host)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		up, err := (&mapDialer{routes: w.routes}).DialContext(r.Context(), "tcp", net.JoinHostPort(addrs[0], port))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		conn, brw, err := http.NewResponseController(rw).Hijack()
		if err != nil {
			up.Close()
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() {
			defer up.Close()
			defer conn.Close()
			done := make(chan struct{})
			go func() { io.Copy(up, brw); close(done) }()
			io.Copy(conn, up)
			<-done
		}()
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *connectProxy) seen() ([]string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.targets), slices.Clone(p.auth)
}

func TestHTTPSProxy(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "127.0.0.1")
	proxy := startProxy(t, w, false)
	w.env["HTTPS_PROXY"] = "http://pod:proxysecret@" + proxy.addr
	code, report, stderr := w.run(t)
	if code != ExitOK {
		t.Fatalf("exit %d through the proxy: %v %s", code, failedIDs(report), stderr)
	}
	targets, auth := proxy.seen()
	for _, want := range []string{
		fmt.Sprintf("pods.test:%d", w.port["pods"]), fmt.Sprintf("sentry.test:%d", w.port["sentry"]),
		fmt.Sprintf("locate.test:%d", w.port["locate"]), fmt.Sprintf("crl.test:%d", w.port["crl"]),
		fmt.Sprintf("registry.test:%d", w.port["registry"]), "www.speedtest.net:443",
	} {
		if !slices.Contains(targets, want) {
			t.Errorf("proxy was not asked to CONNECT %s (saw %v)", want, targets)
		}
	}
	// Measurement traffic and the host's APT go direct.
	for _, tgt := range targets {
		if strings.HasPrefix(tgt, "ndt1.test") || strings.HasPrefix(tgt, "ookla") || strings.Contains(tgt, "debian") {
			t.Errorf("direct traffic went through the proxy: %s", tgt)
		}
	}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("pod:proxysecret"))
	for _, a := range auth {
		if a != wantAuth {
			t.Errorf("Proxy-Authorization %q, want %q", a, wantAuth)
		}
	}
	rows := rowsByID(report)
	for _, p := range rows[RowPods].Probes {
		if stepNames(p)[0] != StepProxy {
			t.Errorf("pods probe through a proxy should start with the proxy step (DNS is the proxy's): %v", stepNames(p))
		}
	}
	for _, p := range rows[RowOokla].Probes {
		if p.Kind == ProbeTCP && stepNames(p)[0] != StepDNS {
			t.Errorf("ookla probes go direct: %v", stepNames(p))
		}
	}
}

func TestHTTPSProxyRefuses(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "127.0.0.1")
	proxy := startProxy(t, w, true)
	w.env["HTTPS_PROXY"] = "http://pod:proxysecret@" + proxy.addr
	var stdout, stderr bytes.Buffer
	code := checkCommand(context.Background(), nil, w.env, &stdout, &stderr, w.options(3*time.Second), w.reqOptions()...)
	if code != ExitFailed {
		t.Fatalf("exit %d, want 1", code)
	}
	out := stdout.String()
	want := fmt.Sprintf("proxy %s refused CONNECT to pods.test:%d: HTTP 403 Forbidden", proxy.addr, w.port["pods"])
	if !strings.Contains(out, want) {
		t.Errorf("table lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "proxysecret") || strings.Contains(stderr.String(), "proxysecret") {
		t.Errorf("the proxy password leaked:\n%s", out)
	}
}

// The overall deadline bounds the check even when every step would wait.
func TestOverallDeadline(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "127.0.0.1")
	w.dns.hush("pods.test", "sentry.test", "crl.test")
	var stdout, stderr bytes.Buffer
	opts := w.options(time.Minute)
	code := checkCommand(context.Background(), []string{"--format", "json", "--timeout", "2s", "--step-timeout", "1m"}, w.env, &stdout, &stderr, opts, w.reqOptions()...)
	report := decodeReport(t, stdout.Bytes(), stderr.String())
	if code != ExitFailed {
		t.Fatalf("exit %d", code)
	}
	for _, id := range []string{RowPods, RowSentry, RowCRL} {
		row := rowsByID(report)[id]
		if row.Verdict != Fail || !strings.Contains(row.Hint, "overall deadline") {
			t.Errorf("row %s: %+v", id, row)
		}
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "127.0.0.1")
	var mu sync.Mutex
	inFlight, peak := 0, 0
	tracking := &trackingDialer{next: &mapDialer{routes: w.routes}, enter: func(d int) {
		mu.Lock()
		defer mu.Unlock()
		inFlight += d
		peak = max(peak, inFlight)
	}}
	agent, updater, err := LoadConfig(w.env)
	if err != nil {
		t.Fatal(err)
	}
	opts := w.options(3 * time.Second)
	opts.Dialer, opts.Concurrency = tracking, 2
	report := Check(context.Background(), Requirements(agent, updater, w.reqOptions()...), opts)
	if !report.OK() {
		t.Fatalf("failing rows %v", failedIDs(report))
	}
	if peak > 2 || peak == 0 {
		t.Errorf("peak concurrent connections %d, want 1..2", peak)
	}
}

type trackingDialer struct {
	next  Dialer
	enter func(int)
}

func (d *trackingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.enter(1)
	defer d.enter(-1)
	// Hold the slot briefly so overlapping dials are visible.
	time.Sleep(20 * time.Millisecond)
	return d.next.DialContext(ctx, network, addr)
}

func TestRecordMetricsAndSummary(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "127.0.0.1")
	w.route(5060, w.closedPort())
	agent, updater, err := LoadConfig(w.env)
	if err != nil {
		t.Fatal(err)
	}
	report := Check(context.Background(), Requirements(agent, updater, w.reqOptions()...), w.options(3*time.Second))
	m := telemetry.NewMetrics()
	RecordMetrics(m, report)
	if v := m.NetCheckPass.WithLabelValues(RowOokla).Value(); v != 0 {
		t.Errorf("ookla gauge %v, want 0", v)
	}
	if v := m.NetCheckPass.WithLabelValues(RowPods).Value(); v != 1 {
		t.Errorf("pods gauge %v, want 1", v)
	}
	if ts := m.NetCheckTime.Value(); ts < float64(report.Started.Unix()) {
		t.Errorf("timestamp %v before the check started %v", ts, report.Started.Unix())
	}
	s := report.Summary()
	if !strings.HasPrefix(s, "network check failed:") || !strings.Contains(s, "ookla (tcp: none of 2 servers reachable on port 5060") {
		t.Errorf("summary %q", s)
	}
	RecordMetrics(nil, report) // the agent may run without metrics
}

func probeTargets(row RowResult) []string {
	var out []string
	for _, p := range row.Probes {
		out = append(out, p.Target)
	}
	return out
}

func stepNames(p ProbeResult) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Name)
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

func probeDetailContains(row RowResult, s string) bool {
	for _, p := range row.Probes {
		for _, st := range p.Steps {
			if strings.Contains(st.Detail, s) {
				return true
			}
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestBadProxySettingsAreNotEchoed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, proxy  string
		code         int
		hint, stderr string
	}{
		// net/http ignores an unparsable proxy, so the pod's clients go
		// direct; the check does the same, and warns.
		{"unparsable", "http://pod:proxysecret@%zz", ExitOK, "", "HTTPS_PROXY is not a valid proxy URL"},
		{"unsupported scheme", "socks9://pod:proxysecret@proxy.test:1080", ExitFailed, `unsupported proxy scheme "socks9"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "127.0.0.1")
			w.env["HTTPS_PROXY"] = tt.proxy
			var stdout, stderr bytes.Buffer
			code := checkCommand(context.Background(), []string{"--format", "json"}, w.env, &stdout, &stderr, w.options(3*time.Second), w.reqOptions()...)
			report := decodeReport(t, stdout.Bytes(), stderr.String())
			if code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			if row := rowsByID(report)[RowPods]; tt.hint != "" && (row.Step != StepProxy || !strings.Contains(row.Hint, tt.hint)) {
				t.Errorf("pods: %+v", row)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
			if strings.Contains(stdout.String()+stderr.String(), "proxysecret") {
				t.Errorf("the proxy password leaked:\n%s\n%s", stdout.String(), stderr.String())
			}
		})
	}
}
