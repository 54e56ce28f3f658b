package config

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAgentDefaults(t *testing.T) {
	c, err := LoadAgent(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerURL != DefaultServerURL || c.Standalone() {
		t.Errorf("ServerURL = %q", c.ServerURL)
	}
	if c.DataDir != "/data" || c.PingInterval != 15*time.Second || c.TestTimeout != 2*time.Minute {
		t.Errorf("defaults: %+v", c)
	}
	if strings.Join(c.Tests, ",") != "ndt7,ookla" || c.NDT7Scheme != "auto" || c.OoklaBin != "speedtest" {
		t.Errorf("defaults: %+v", c)
	}
	if c.TestsPerDay != 4 || c.ListenAddr != "127.0.0.1:9100" || c.OutboxMaxBytes != 64<<20 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestExplicitEmptyValuesAreKept(t *testing.T) {
	c, err := LoadAgent(map[string]string{"RADAR_SERVER_URL": "", "RADAR_LISTEN_ADDR": ""})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Standalone() {
		t.Fatalf("RADAR_SERVER_URL=\"\" did not select standalone mode: %q", c.ServerURL)
	}
	if c.ListenAddr != "" {
		t.Fatalf("RADAR_LISTEN_ADDR=\"\" did not disable the endpoint: %q", c.ListenAddr)
	}
}

func TestAgentValues(t *testing.T) {
	c, err := LoadAgent(map[string]string{
		"RADAR_SERVER_URL": "http://127.0.0.1:3000/", "RADAR_TESTS": " Ookla ,ndt7", "RADAR_OUTBOX_MAX_BYTES": "2MiB",
		"RADAR_TESTS_PER_DAY": "0.5", "RADAR_NDT7_SERVER": "[::1]:4443", "RADAR_LISTEN_ADDR": ":9100",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerURL != "http://127.0.0.1:3000" {
		t.Errorf("server URL %q", c.ServerURL)
	}
	if strings.Join(c.Tests, ",") != "ookla,ndt7" || c.OutboxMaxBytes != 2<<20 || c.TestsPerDay != 0.5 {
		t.Errorf("parsed %+v", c)
	}
}

func TestAgentInvalid(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
		wantIn  []string
	}{
		{"bad url", map[string]string{"RADAR_SERVER_URL": "radar.example.org"}, "RADAR_SERVER_URL", []string{`"radar.example.org"`, "https or http"}},
		{"unknown scheme", map[string]string{"RADAR_SERVER_URL": "ftp://radar.example.org"}, "RADAR_SERVER_URL", []string{`"ftp"`}},
		{"url with secret", map[string]string{"RADAR_SERVER_URL": "https://u:p@radar.example.org"}, "RADAR_SERVER_URL", []string{"credentials", "https://[REDACTED]@radar.example.org"}},
		{"url with a query", map[string]string{"RADAR_SERVER_URL": "https://radar.example.org/?x=1"}, "RADAR_SERVER_URL", []string{"a query", "https://radar.example.org/?[REDACTED]"}},
		{"ndt7 scheme", map[string]string{"RADAR_NDT7_SCHEME": "http"}, "RADAR_NDT7_SCHEME", []string{`"http"`, "auto, wss, ws"}},
		{"duration", map[string]string{"RADAR_TEST_TIMEOUT": "2 minutes"}, "RADAR_TEST_TIMEOUT", []string{`"2 minutes"`, "duration"}},
		{"negative duration", map[string]string{"RADAR_PING_INTERVAL": "-5s"}, "RADAR_PING_INTERVAL", []string{"-5s", "at least"}},
		{"unknown runner", map[string]string{"RADAR_TESTS": "ndt7,iperf"}, "RADAR_TESTS", []string{`"iperf"`, "ndt7, ookla"}},
		{"duplicate runner", map[string]string{"RADAR_TESTS": "ndt7,ndt7"}, "RADAR_TESTS", []string{"twice"}},
		{"negative tests per day", map[string]string{"RADAR_TESTS_PER_DAY": "-1"}, "RADAR_TESTS_PER_DAY", []string{`"-1"`, "from 0.01", "to 96"}},
		{"zero tests per day", map[string]string{"RADAR_TESTS_PER_DAY": "0"}, "RADAR_TESTS_PER_DAY", []string{`"0"`, "from 0.01", "to 96"}},
		{"NaN tests per day", map[string]string{"RADAR_TESTS_PER_DAY": "NaN"}, "RADAR_TESTS_PER_DAY", []string{`"NaN"`, "from 0.01", "to 96"}},
		{"infinite tests per day", map[string]string{"RADAR_TESTS_PER_DAY": "+Inf"}, "RADAR_TESTS_PER_DAY", []string{`"+Inf"`, "from 0.01"}},
		{"negative infinite tests per day", map[string]string{"RADAR_TESTS_PER_DAY": "-Inf"}, "RADAR_TESTS_PER_DAY", []string{`"-Inf"`, "from 0.01"}},
		{"tiny tests per day", map[string]string{"RADAR_TESTS_PER_DAY": "1e-300"}, "RADAR_TESTS_PER_DAY", []string{`"1e-300"`, "from 0.01"}},
		{"just below the minimum", map[string]string{"RADAR_TESTS_PER_DAY": "0.0099"}, "RADAR_TESTS_PER_DAY", []string{`"0.0099"`, "from 0.01"}},
		{"too many tests per day", map[string]string{"RADAR_TESTS_PER_DAY": "96.5"}, "RADAR_TESTS_PER_DAY", []string{`"96.5"`, "to 96"}},
		{"tests per day garbage", map[string]string{"RADAR_TESTS_PER_DAY": "four"}, "RADAR_TESTS_PER_DAY", []string{`"four"`, "number"}},
		{"negative outbox", map[string]string{"RADAR_OUTBOX_MAX_BYTES": "-1"}, "RADAR_OUTBOX_MAX_BYTES", []string{`"-1"`, "negative"}},
		{"outbox garbage", map[string]string{"RADAR_OUTBOX_MAX_BYTES": "lots"}, "RADAR_OUTBOX_MAX_BYTES", []string{`"lots"`, "MiB"}},
		{"ndt7 server", map[string]string{"RADAR_NDT7_SERVER": "ndt.example.org"}, "RADAR_NDT7_SERVER", []string{"host:port"}},
		{"listen addr", map[string]string{"RADAR_LISTEN_ADDR": "9100"}, "RADAR_LISTEN_ADDR", []string{`"9100"`}},
		{"log level", map[string]string{"RADAR_LOG_LEVEL": "loud"}, "RADAR_LOG_LEVEL", []string{"debug, info, warn, error"}},
		{"log format", map[string]string{"RADAR_LOG_FORMAT": "xml"}, "RADAR_LOG_FORMAT", []string{"auto, json, text"}},
		{"ca file", map[string]string{"RADAR_NDT7_CA_FILE": "/nonexistent/ca.pem"}, "RADAR_NDT7_CA_FILE", []string{"/nonexistent/ca.pem", "no such file"}},
		{"token file", map[string]string{"RADAR_REGISTRATION_TOKEN_FILE": "/nonexistent/token"}, "RADAR_REGISTRATION_TOKEN_FILE", []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadAgent(tt.env)
			if err == nil {
				t.Fatal("invalid configuration accepted")
			}
			if !IsConfigError(err) {
				t.Fatalf("error %v is not a config error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantVar) {
				t.Errorf("message does not name %s: %s", tt.wantVar, msg)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
		})
	}
}

// TestTestsPerDayRange: the bounds themselves are accepted, and every
// accepted value gives the schedule a representable, positive mean.
func TestTestsPerDayRange(t *testing.T) {
	for _, v := range []string{"0.01", "1", "4", "96"} {
		c, err := LoadAgent(map[string]string{"RADAR_TESTS_PER_DAY": v})
		if err != nil {
			t.Errorf("RADAR_TESTS_PER_DAY=%s refused: %v", v, err)
			continue
		}
		mean := float64(24*time.Hour) / c.TestsPerDay
		if mean <= 0 || 2*mean >= math.MaxInt64 {
			t.Errorf("RADAR_TESTS_PER_DAY=%s: mean gap %g ns not representable", v, mean)
		}
	}
}

// TestURLErrorsNeverEchoCredentials: whatever is wrong with a URL, the
// message shows where it points but not the password, user or query that
// came with it — including values url.Parse cannot read.
func TestURLErrorsNeverEchoCredentials(t *testing.T) {
	const pw = "hunter2pass"
	tests := []struct {
		name, env, val, want string
	}{
		{"credentials", "RADAR_SERVER_URL", "https://admin:" + pw + "@radar.example.org", "https://[REDACTED]@radar.example.org"},
		{"credentials and a path", "RADAR_SERVER_URL", "http://admin:" + pw + "@127.0.0.1:3000/pods/", "http://[REDACTED]@127.0.0.1:3000/pods"},
		{"token in the query", "RADAR_SERVER_URL", "https://radar.example.org?token=" + pw, "https://radar.example.org?[REDACTED]"},
		{"wrong scheme with credentials", "RADAR_SERVER_URL", "ftp://admin:" + pw + "@radar.example.org", "ftp://[REDACTED]@radar.example.org"},
		{"no scheme", "RADAR_SERVER_URL", "admin:" + pw + "@radar.example.org", "[REDACTED]@radar.example.org"},
		{"unparsable", "RADAR_SERVER_URL", "https://admin:" + pw + "@radar.example.org:port", "https://[REDACTED]@radar.example.org:port"},
		{"CRL URL", "RADAR_CRL_URL", "http://admin:" + pw + "@storage.example.org/crl.pem", "http://[REDACTED]@storage.example.org/crl.pem"},
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "root.pem")
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.env == "RADAR_CRL_URL" {
				_, err = LoadUpdater(map[string]string{"RADAR_ROOT_CA_FILE": ca, tt.env: tt.val})
			} else {
				_, err = LoadAgent(map[string]string{tt.env: tt.val})
			}
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if strings.Contains(msg, pw) || strings.Contains(msg, "admin") {
				t.Errorf("credentials echoed: %s", msg)
			}
			if !strings.Contains(msg, tt.env) || !strings.Contains(msg, tt.want) {
				t.Errorf("message does not show %s=%q: %s", tt.env, tt.want, msg)
			}
		})
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	_, err := LoadAgent(map[string]string{"RADAR_NDT7_SCHEME": "x", "RADAR_TESTS": "y", "RADAR_TEST_TIMEOUT": "z"})
	es, ok := err.(Errors)
	if !ok || len(es) != 3 {
		t.Fatalf("got %v, want 3 errors", err)
	}
}

func TestSecretsFromFilesAndNeverEchoed(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("tok-abcdefgh\n"), 0o600)
	c, err := LoadAgent(map[string]string{"RADAR_REGISTRATION_TOKEN_FILE": tok})
	if err != nil {
		t.Fatal(err)
	}
	if c.RegistrationToken != "tok-abcdefgh" {
		t.Fatalf("token from file = %q", c.RegistrationToken)
	}
	_, err = LoadAgent(map[string]string{"RADAR_REGISTRATION_TOKEN_FILE": tok, "RADAR_REGISTRATION_TOKEN": "other"})
	if err == nil || !strings.Contains(err.Error(), "only one") {
		t.Fatalf("both NAME and NAME_FILE: %v", err)
	}
	const dsnKey = "abcdef0123456789"
	_, err = LoadAgent(map[string]string{"SENTRY_DSN": "ftp://" + dsnKey + "@sentry.example.org/1"})
	if err == nil || !strings.Contains(err.Error(), "SENTRY_DSN") || strings.Contains(err.Error(), dsnKey) {
		t.Fatalf("bad DSN error must name the variable but not echo it: %v", err)
	}
	_, err = LoadAgent(map[string]string{"SENTRY_DSN": "https://sentry.example.org/1"})
	if err == nil || !strings.Contains(err.Error(), "not a Sentry DSN") {
		t.Fatalf("DSN without key: %v", err)
	}
}

func TestPrintRedacts(t *testing.T) {
	env := map[string]string{"RADAR_REGISTRATION_TOKEN": "tok-secret-value", "SENTRY_DSN": "https://key0123456789@o1.ingest.sentry.io/42", "RADAR_POD_NAME": "library"}
	c, err := LoadAgent(env)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	Print(&buf, c, c.Set)
	out := buf.String()
	for _, secret := range []string{"tok-secret-value", "key0123456789"} {
		if strings.Contains(out, secret) {
			t.Errorf("Print leaked %q:\n%s", secret, out)
		}
	}
	if strings.Contains(out, "RADAR_REGISTER_LABEL=\t# set") {
		t.Errorf("an absent variable is shown as set:\n%s", out)
	}
	for _, want := range []string{"RADAR_POD_NAME=library\t# set", "RADAR_DATA_DIR=/data\t# default", "SENTRY_DSN=https://[REDACTED]@o1.ingest.sentry.io/42", "RADAR_REGISTRATION_TOKEN=[REDACTED]"} {
		if !strings.Contains(out, want) {
			t.Errorf("Print lacks %q:\n%s", want, out)
		}
	}
}

// TestPrintHidesURLCredentials: a URL that validation accepts with
// userinfo or a signed query is printed without them.
func TestPrintHidesURLCredentials(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "root.pem")
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	c, err := LoadUpdater(map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_CRL_URL": "https://crl:hunter2pass@storage.example.org/root.crl?X-Goog-Signature=abc123sig"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	Print(&buf, c, c.Set)
	out := buf.String()
	if strings.Contains(out, "hunter2pass") || strings.Contains(out, "abc123sig") {
		t.Fatalf("Print leaked URL credentials:\n%s", out)
	}
	if !strings.Contains(out, "RADAR_CRL_URL=https://[REDACTED]@storage.example.org/root.crl?[REDACTED]") {
		t.Fatalf("Print does not show where the URL points:\n%s", out)
	}
}

func TestUnknownVariables(t *testing.T) {
	got := UnknownVariables(map[string]string{
		"RADAR_TEST": "ookla", "RADAR_TESTS": "ndt7", "RADAR_AGENT_IMAGE": "x", "SENTRY_DSN_FILE": "/x",
		"RADAR_REGISTRATION_TOKEN_FILE": "/t", "PATH": "/bin", "RADAR_PINGINTERVAL": "1s",
	})
	if strings.Join(got, ",") != "RADAR_PINGINTERVAL,RADAR_TEST" {
		t.Fatalf("UnknownVariables = %v", got)
	}
}

func TestUpdater(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "root.pem")
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	c, err := LoadUpdater(map[string]string{"RADAR_ROOT_CA_FILE": ca})
	if err != nil {
		t.Fatal(err)
	}
	if c.AgentContainer != "radar-agent" || c.CRLURL != DefaultCRLURL || c.HealthTimeout != 90*time.Second || c.AgentImage != DefaultAgentImage {
		t.Errorf("defaults: %+v", c)
	}
	tests := []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_CRL_URL": "http://storage.googleapis.com/x.crl"}, "RADAR_CRL_URL"},
		{map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_HEALTH_TIMEOUT": "soon"}, "RADAR_HEALTH_TIMEOUT"},
		{map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_AGENT_IMAGE": "ghcr.io/x/agent:1.0"}, "RADAR_AGENT_IMAGE"},
		{map[string]string{"RADAR_ROOT_CA_FILE": filepath.Join(dir, "missing.pem")}, "RADAR_ROOT_CA_FILE"},
	}
	for _, tt := range tests {
		_, err := LoadUpdater(tt.env)
		if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tt.wantVar) {
			t.Errorf("LoadUpdater(%v) = %v, want error naming %s", tt.env, err, tt.wantVar)
		}
	}
}

// TestPlainHTTPServerOnlyToLoopback: over http the pod secret travels in
// clear text (ClientToken header, client_secret field, Basic credentials on
// ws://), so http is refused, naming the variable and the way out, unless
// the host is this machine or the operator set RADAR_ALLOW_INSECURE_SERVER.
func TestPlainHTTPServerOnlyToLoopback(t *testing.T) {
	tests := []struct {
		url   string
		allow string // RADAR_ALLOW_INSECURE_SERVER; "" = unset
		ok    bool
	}{
		{"https://radar.exactlylabs.com", "", true},
		{"https://172.17.0.1:3000", "", true},
		{"http://127.0.0.1:3000", "", true},
		{"http://127.8.9.10:3000/pods", "", true},
		{"http://[::1]:3000", "", true},
		{"http://localhost:3000", "", true},
		{"http://LocalHost", "", true},
		{"http://radar.exactlylabs.com", "", false},
		{"http://172.17.0.1:3000", "", false}, // the Docker bridge: another host on the network's path
		{"http://192.168.1.10", "", false},
		{"http://[fe80::1%25eth0]:3000", "", false},
		{"http://localhost.example.org", "", false},
		{"http://127.0.0.1.nip.io", "", false},
		{"http://0.0.0.0:3000", "", false},
		{"http://172.17.0.1:3000", "false", false},
		{"http://172.17.0.1:3000", "true", true},
		{"http://radar.example.org", "true", true},
	}
	for _, tt := range tests {
		env := map[string]string{"RADAR_SERVER_URL": tt.url}
		if tt.allow != "" {
			env["RADAR_ALLOW_INSECURE_SERVER"] = tt.allow
		}
		if tt.allow == "" && NeedsInsecureServerOptIn(tt.url) == tt.ok {
			t.Errorf("NeedsInsecureServerOptIn(%q) = %v, want %v", tt.url, !tt.ok, tt.ok)
		}
		c, err := LoadAgent(env)
		if tt.ok {
			if err != nil {
				t.Errorf("%v refused: %v", env, err)
			} else if c.ServerURL != tt.url {
				t.Errorf("%v: server URL %q", env, c.ServerURL)
			}
			continue
		}
		if err == nil {
			t.Errorf("%v accepted", env)
			continue
		}
		msg := err.Error()
		if !IsConfigError(err) || !strings.Contains(msg, "RADAR_SERVER_URL") || !strings.Contains(msg, "clear text") ||
			!strings.Contains(msg, "allowed: an https URL") || !strings.Contains(msg, "RADAR_ALLOW_INSECURE_SERVER=true") {
			t.Errorf("%v: error does not name the variable, the problem and the allowed values: %v", env, err)
		}
	}

	_, err := LoadAgent(map[string]string{"RADAR_SERVER_URL": "http://172.17.0.1:3000", "RADAR_ALLOW_INSECURE_SERVER": "yes"})
	if err == nil || !strings.Contains(err.Error(), "RADAR_ALLOW_INSECURE_SERVER") || !strings.Contains(err.Error(), "true or false") {
		t.Errorf("RADAR_ALLOW_INSECURE_SERVER=yes: %v, want an error naming it and true or false", err)
	}
	// Empty is unset (compose passes an unset variable as empty).
	if c, err := LoadAgent(map[string]string{"RADAR_ALLOW_INSECURE_SERVER": ""}); err != nil || c.AllowInsecureServer {
		t.Errorf("RADAR_ALLOW_INSECURE_SERVER empty: %+v, %v", c.AllowInsecureServer, err)
	}
}
