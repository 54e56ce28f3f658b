package ookla

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// The runner as the agent sees it: the agent declares this interface.
var _ interface {
	Name() string
	Run(context.Context, speedtest.Target) (speedtest.Result, error)
} = (*Runner)(nil)

func newLogger() (*slog.Logger, *proctest.LogBuffer) {
	lb := &proctest.LogBuffer{}
	return slog.New(slog.NewJSONHandler(lb, nil)), lb
}

// fixtureSummary is what the fixture's result says, computed here from its
// fields (bytes/s → Mbit/s).
func fixtureSummary(t *testing.T) speedtest.Summary {
	var r struct {
		Download struct {
			Bandwidth float64
			Bytes     int64
		}
		Upload struct {
			Bandwidth float64
			Bytes     int64
		}
		Ping struct{ Latency float64 }
	}
	if err := json.Unmarshal(ooklatest.Result(), &r); err != nil {
		t.Fatal(err)
	}
	return speedtest.Summary{
		DownloadMbps:  r.Download.Bandwidth * 8 / 1e6,
		UploadMbps:    r.Upload.Bandwidth * 8 / 1e6,
		LatencyMs:     r.Ping.Latency,
		BytesReceived: r.Download.Bytes,
		BytesSent:     r.Upload.Bytes,
	}
}

func TestRunModes(t *testing.T) {
	want := fixtureSummary(t)
	if want.DownloadMbps < 402 || want.DownloadMbps > 403 { // 50357709 B/s
		t.Fatalf("fixture summary %+v", want)
	}
	cases := map[ooklatest.Mode]struct {
		class      speedtest.Class
		errHas     string
		stderrHas  string
		timeout    time.Duration
		wantResult bool
	}{
		ooklatest.ModeResult:         {wantResult: true},
		ooklatest.ModeResultWithLogs: {wantResult: true},
		ooklatest.ModeFail:           {class: speedtest.ClassExitStatus, errHas: "exit status 2: Configuration - Couldn't resolve host name", stderrHas: ooklatest.FailStderr},
		ooklatest.ModeHang:           {class: speedtest.ClassTimeout, timeout: 3 * time.Second},
		ooklatest.ModeGarbage:        {class: speedtest.ClassBadOutput, errHas: "not JSON"},
		ooklatest.ModeTruncated:      {class: speedtest.ClassBadOutput, errHas: "no result object"},
		ooklatest.ModeLogsOnly:       {class: speedtest.ClassBadOutput, errHas: "No servers defined"},
		ooklatest.ModeFlood:          {class: speedtest.ClassBadOutput, errHas: "exceeds"},
	}
	for _, mode := range ooklatest.Modes {
		tc, ok := cases[mode]
		if !ok {
			t.Errorf("mode %s has no test case", mode)
			continue
		}
		for _, target := range []speedtest.Target{{}, {Interface: "wlan0", LocalAddr: net.ParseIP("192.168.7.21")}} {
			t.Run(string(mode)+"/"+target.Interface, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				bin := ooklatest.Install(t, dir, mode)
				log, logs := newLogger()
				timeout := tc.timeout
				if timeout == 0 {
					timeout = time.Minute
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				res, err := New(Options{Bin: bin, Logger: log}).Run(ctx, target)

				wantArgs := []string{"--accept-license", "--accept-gdpr", "--format=json"}
				if target.LocalAddr != nil {
					wantArgs = append(wantArgs, "--ip=192.168.7.21")
				}
				if got := ooklatest.Args(t, dir); !reflect.DeepEqual(got, wantArgs) {
					t.Errorf("CLI args %q, want %q", got, wantArgs)
				}
				if res.Runner != "ookla" || res.Style != "OOKLA" || res.Interface != target.Interface ||
					res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) {
					t.Errorf("result identity %+v", res)
				}
				if tc.wantResult {
					if err != nil {
						t.Fatalf("Run: %v", err)
					}
					if !bytes.Equal(res.Raw, ooklatest.Result()) {
						t.Errorf("Raw is not the CLI's result object byte for byte:\n got %s\nwant %s", res.Raw, ooklatest.Result())
					}
					if res.Summary != want {
						t.Errorf("Summary %+v, want %+v", res.Summary, want)
					}
					if !strings.Contains(logs.String(), `"msg":"ookla test finished"`) {
						t.Errorf("success not logged: %s", logs)
					}
					return
				}
				if got := speedtest.ClassOf(err); got != tc.class {
					t.Fatalf("class %q, want %q (err: %v)", got, tc.class, err)
				}
				var se *speedtest.Error
				if !errors.As(err, &se) || se.Runner != "ookla" {
					t.Fatalf("error %T is not a *speedtest.Error of ookla", err)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q lacks %q", err, tc.errHas)
				}
				if !strings.Contains(se.Stderr, tc.stderrHas) {
					t.Errorf("Stderr %q lacks %q", se.Stderr, tc.stderrHas)
				}
				if res.Raw != nil || res.Summary != (speedtest.Summary{}) {
					t.Errorf("failed run returned Raw %q Summary %+v", res.Raw, res.Summary)
				}
				if !strings.Contains(logs.String(), `"class":"`+string(tc.class)+`"`) {
					t.Errorf("failure not logged with its class: %s", logs)
				}
				if mode == ooklatest.ModeHang {
					pids := ooklatest.PIDs(t, dir)
					if len(pids) != 2 {
						t.Fatalf("hanging fake recorded pids %v", pids)
					}
					// The whole group was killed: the script and the child
					// it started.
					waitDead(t, pids)
				}
			})
		}
	}
}

func TestRunCanceled(t *testing.T) {
	dir := t.TempDir()
	bin := ooklatest.Install(t, dir, ooklatest.ModeHang)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the fake is hanging, as a shutdown would.
	go func() {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if len(ooklatest.PIDs(t, dir)) == 2 {
				break
			}
		}
		cancel()
	}()
	_, err := New(Options{Bin: bin}).Run(ctx, speedtest.Target{})
	if got := speedtest.ClassOf(err); got != speedtest.ClassCanceled {
		t.Fatalf("class %q, want canceled (err: %v)", got, err)
	}
	pids := ooklatest.PIDs(t, dir)
	if len(pids) != 2 {
		t.Fatalf("hanging fake recorded pids %v", pids)
	}
	waitDead(t, pids)
}

// waitDead waits for processes that were sent SIGKILL to finish dying: the
// signal is asynchronous, and the child is not ours to wait for. Without the
// group kill they would live on for an hour.
func waitDead(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for ooklatest.Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if ooklatest.Alive(pid) {
			t.Errorf("pid %d survived", pid)
		}
	}
}

// TestMissingBinary: unavailable, on every run and from Available, but
// logged once; found again, it runs.
func TestMissingBinary(t *testing.T) {
	dir := t.TempDir()
	for name, bin := range map[string]string{
		"absent path":              filepath.Join(dir, "speedtest"),
		"not on PATH":              "radarpod-no-such-speedtest",
		"not executable":           writeFile(t, dir, "plain", "not a program", 0o644),
		"not an executable format": writeFile(t, dir, "noshebang", "\x00\x01\x02", 0o755),
	} {
		t.Run(name, func(t *testing.T) {
			log, logs := newLogger()
			r := New(Options{Bin: bin, Logger: log})
			for range 3 {
				res, err := r.Run(context.Background(), speedtest.Target{})
				if got := speedtest.ClassOf(err); got != speedtest.ClassUnavailable {
					t.Fatalf("class %q, want unavailable (err: %v)", got, err)
				}
				if res.Raw != nil || res.Runner != "ookla" {
					t.Errorf("result %+v", res)
				}
			}
			// A file that exists but cannot be executed is found by a look-up
			// and refused only when started.
			if err := r.Available(); name != "not an executable format" && speedtest.ClassOf(err) != speedtest.ClassUnavailable {
				t.Errorf("Available() = %v", err)
			}
			if n := strings.Count(logs.String(), "the ookla runner is unavailable"); n != 1 {
				t.Errorf("missing CLI logged %d times:\n%s", n, logs)
			}
		})
	}

	t.Run("installed later", func(t *testing.T) {
		log, logs := newLogger()
		bin := filepath.Join(t.TempDir(), "speedtest")
		r := New(Options{Bin: bin, Logger: log})
		if r.Available() == nil {
			t.Fatal("available before install")
		}
		ooklatest.Install(t, filepath.Dir(bin), ooklatest.ModeResult)
		if err := r.Available(); err != nil {
			t.Fatalf("Available() after install: %v", err)
		}
		if _, err := r.Run(context.Background(), speedtest.Target{}); err != nil {
			t.Fatalf("Run after install: %v", err)
		}
		if !strings.Contains(logs.String(), "Ookla CLI is available again") {
			t.Errorf("recovery not logged: %s", logs)
		}
	})
}

func TestDefaultBinIsLookedUpOnPath(t *testing.T) {
	dir := t.TempDir()
	ooklatest.Install(t, dir, ooklatest.ModeResult)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	res, err := New(Options{}).Run(context.Background(), speedtest.Target{})
	if err != nil || !bytes.Equal(res.Raw, ooklatest.Result()) {
		t.Fatalf("Run with the default bin on PATH: %v", err)
	}
}

func TestParse(t *testing.T) {
	result := string(ooklatest.Result())
	for _, tc := range []struct {
		name   string
		out    string
		errHas string
	}{
		{name: "result only", out: result + "\n"},
		{name: "no trailing newline", out: result},
		{name: "CRLF", out: result + "\r\n"},
		{name: "result after logs", out: `{"type":"log","level":"info","message":"x"}` + "\n" + result + "\n"},
		{name: "empty", out: "", errHas: "no result object in 0 bytes"},
		{name: "other types only", out: `{"type":"testStart"}` + "\n", errHas: "no result object"},
		{name: "result without figures", out: `{"type":"result","download":{},"upload":{"bandwidth":1},"ping":{"latency":1}}`, errHas: "lacks"},
		{name: "result with wrong types", out: `{"type":"result","download":{"bandwidth":"fast"},"upload":{"bandwidth":1},"ping":{"latency":1}}`, errHas: "result object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, sum, _, err := parse([]byte(tc.out))
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil || !bytes.Equal(raw, ooklatest.Result()) {
				t.Fatalf("raw %q err %v", raw, err)
			}
			// The fixture's download.bytes and upload.bytes.
			if sum.BytesReceived != 529086852 || sum.BytesSent != 44203740 || sum.Bytes() != 573290592 {
				t.Errorf("bytes: received %d, sent %d", sum.BytesReceived, sum.BytesSent)
			}
		})
	}
	// A CLI that reports no byte counts still gives a result; it counts
	// as having moved nothing known.
	_, sum, _, err := parse([]byte(`{"type":"result","download":{"bandwidth":1},"upload":{"bandwidth":1},"ping":{"latency":1}}`))
	if err != nil || sum.Bytes() != 0 {
		t.Fatalf("no byte counts: %+v, %v", sum, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(ooklatest.Result())
	f.Add([]byte(`{"type":"log","level":"error","message":"m"}` + "\n" + `{"type":"result"`))
	f.Add([]byte("\x00garbage\n{}\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		raw, sum, _, err := parse(out)
		if err == nil && (len(raw) == 0 || !json.Valid(raw) || !bytes.Contains(out, raw)) {
			t.Fatalf("accepted %q as %q (%+v)", out, raw, sum)
		}
	})
}

func writeFile(t *testing.T, dir, name, content string, mode uint32) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), os.FileMode(mode)); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServers(t *testing.T) {
	list := `{"type":"serverList","timestamp":"2026-01-01T00:00:00Z","servers":[{"id":52973,"host":"opstelecom.ravisystems.com.br","port":8080,"name":"Ops Telecom","location":"Sorocaba","country":"Brazil"}]}`
	tests := []struct {
		name      string
		script    string
		wantHosts []string
		wantClass speedtest.Class
	}{
		{"list", "#!/bin/sh\ncase \" $* \" in *\" --servers \"*\" --format=json \"*) ;; *) exit 9;; esac\necho '" + list + "'\n", []string{"opstelecom.ravisystems.com.br"}, ""},
		{"exit status", "#!/bin/sh\necho 'no network' >&2\nexit 3\n", nil, speedtest.ClassExitStatus},
		{"garbage", "#!/bin/sh\necho 'not json'\n", nil, speedtest.ClassBadOutput},
		{"empty list", "#!/bin/sh\necho '{\"type\":\"serverList\",\"servers\":[]}'\n", nil, speedtest.ClassBadOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := writeFile(t, t.TempDir(), "speedtest", tt.script, 0o755)
			servers, err := New(Options{Bin: bin}).Servers(context.Background())
			if tt.wantClass != "" {
				if speedtest.ClassOf(err) != tt.wantClass {
					t.Fatalf("Servers() err = %v (class %q), want class %q", err, speedtest.ClassOf(err), tt.wantClass)
				}
				return
			}
			if err != nil || len(servers) != 1 || servers[0].Host != tt.wantHosts[0] || servers[0].Port != 8080 || servers[0].ID != 52973 {
				t.Fatalf("Servers() = %+v, %v", servers, err)
			}
		})
	}
	if _, err := New(Options{Bin: filepath.Join(t.TempDir(), "missing")}).Servers(context.Background()); speedtest.ClassOf(err) != speedtest.ClassUnavailable {
		t.Fatalf("missing CLI: %v", err)
	}
}

// TestCLIGetsOnlyPathAndHome: the proprietary CLI sees PATH and HOME of the
// agent's environment and nothing else — not the registration token, the
// Sentry DSN, the proxy or anything the agent has — for a test and for the
// server list alike. (t.Setenv: not parallel.)
func TestCLIGetsOnlyPathAndHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("RADAR_REGISTRATION_TOKEN", "tok-never-for-the-cli")
	t.Setenv("SENTRY_DSN", "https://key0123456789@o1.ingest.sentry.io/42")
	t.Setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
	t.Setenv("RADAR_DATA_DIR", "/data")
	want := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}

	dir := t.TempDir()
	r := New(Options{Bin: ooklatest.Install(t, dir, ooklatest.ModeUnique)})
	if _, err := r.Run(context.Background(), speedtest.Target{}); err != nil {
		t.Fatal(err)
	}
	if got := ooklatest.Environ(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("a test's CLI environment = %q, want exactly %q", got, want)
	}
	if _, err := r.Servers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ooklatest.Environ(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("the server list's CLI environment = %q, want exactly %q", got, want)
	}

	// Without HOME the CLI gets PATH alone, not an empty HOME.
	os.Unsetenv("HOME") // restored by t.Setenv's cleanup
	if _, err := r.Run(context.Background(), speedtest.Target{}); err != nil {
		t.Fatal(err)
	}
	if got := ooklatest.Environ(t, dir); !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("without HOME the CLI environment = %q, want exactly %q", got, want[:1])
	}
}

// TestCLIDiesWithTheAgent kills a process running a test (as kill -9 or
// the OOM killer would end the agent) and expects the CLI to go with it.
// The process is this test binary re-executed as an agent stand-in.
func TestCLIDiesWithTheAgent(t *testing.T) {
	if bin := os.Getenv("RADAR_OOKLA_TEST_AGENT_CLI"); bin != "" {
		// The stand-in: run a test that never ends, until killed.
		New(Options{Bin: bin}).Run(context.Background(), speedtest.Target{})
		os.Exit(0)
	}
	dir := t.TempDir()
	bin := ooklatest.Install(t, dir, ooklatest.ModeHang)
	agent := exec.Command(os.Args[0], "-test.run=^TestCLIDiesWithTheAgent$")
	agent.Env = append(os.Environ(), "RADAR_OOKLA_TEST_AGENT_CLI="+bin)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for deadline := time.Now().Add(time.Minute); len(pids) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pids = ooklatest.PIDs(t, dir)
	}
	if len(pids) != 2 {
		agent.Process.Kill()
		agent.Wait()
		t.Fatalf("the CLI never started (pids %v)", pids)
	}
	// The fake is a script that runs a child of its own; the real CLI is
	// one process, which is what the kernel's parent-death signal reaches.
	t.Cleanup(func() { syscall.Kill(pids[1], syscall.SIGKILL) })
	agent.Process.Kill()
	agent.Wait()
	waitDead(t, pids[:1])
}
