//go:build linux && cgo

package ndt7

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/netemu"
	"github.com/radarpod/radarpod/internal/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// buildBench builds cmd/radar-bench with cgo, as `make bench-ndt7` does:
// the benchmark re-executes the binary it runs in for its children, so it is
// tested through the command that offers them. (proctest builds it with the
// race detector: this test checks that the benchmark works and what it
// records, not the figures themselves.)
func buildBench(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the ndt7 benchmark needs root")
	}
	return proctest.BuildCgo(t, "./cmd/radar-bench")
}

// leftovers lists what a bench process with this PID could leave behind.
func leftovers(t *testing.T, pid int) []string {
	t.Helper()
	names, err := netemu.Namespaces(netemu.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, n := range names {
		if strings.HasPrefix(n, fmt.Sprintf("%s-%d-", netemu.DefaultPrefix, pid)) {
			left = append(left, n)
		}
	}
	return left
}

// TestNDT7BenchEndToEnd runs the benchmark briefly for real: the link, the
// real ndt-server, the agent's runner and M-Lab's CLI built from the module
// cache, and checks the figures it writes.
func TestNDT7BenchEndToEnd(t *testing.T) {
	exe := buildBench(t)
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "ndt7", "-rates", "50", "-runs", "1", "-ceiling=false", "-settle", "0", "-root", root)
	modRoot, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Dir = modRoot // where `go mod download` finds the pinned CLI version
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("radar-bench ndt7:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, cmd.Process.Pid); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}

	var figs []benchreport.Figure
	b, err := os.ReadFile(filepath.Join(root, "bench", "out", "ndt7.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &figs); err != nil {
		t.Fatal(err)
	}
	got := map[string]benchreport.Figure{}
	for _, f := range figs {
		got[f.Name] = f
		if f.Command != "make bench-ndt7" || f.Notes == "" {
			t.Errorf("%s: command %q, notes %q", f.Name, f.Command, f.Notes)
		}
	}
	// Fractions of the shaped rate must be fractions (a unit mix-up of Mbit
	// and bit, or of the wrong summary line, lands far outside); the
	// targets themselves are the benchmark's business, not this test's.
	for _, name := range []string{"download_fraction", "upload_fraction", "ndt7client_download_fraction", "ndt7client_upload_fraction"} {
		f, ok := got["ndt7/50mbit/"+name]
		if !ok {
			t.Errorf("no figure %s; have %v", name, figs)
			continue
		}
		if f.Value < 50 || f.Value > 100 || f.Unit != "%" {
			t.Errorf("%s = %v %s, want a share of the 50 Mbit/s link", name, f.Value, f.Unit)
		}
	}
	for name, want := range map[string]struct {
		op     string
		target float64
	}{
		"download_fraction": {">=", 92}, "upload_fraction": {">=", 93},
		"download_diff": {"within", 1}, "upload_diff": {"within", 1},
		"cpu_ratio": {"<=", 1.2}, "peak_rss": {"<=", 40},
	} {
		f := got["ndt7/50mbit/"+name]
		if f.Op != want.op || f.Target != want.target {
			t.Errorf("%s: target %s %v, want %s %v", name, f.Op, f.Target, want.op, want.target)
		}
	}
	for _, name := range []string{"cpu_seconds", "ndt7client_cpu_seconds", "peak_rss", "ndt7client_peak_rss", "rtt"} {
		if f := got["ndt7/50mbit/"+name]; f.Value <= 0 {
			t.Errorf("%s = %v, want a measurement", name, f.Value)
		}
	}
	if f := got["ndt7/50mbit/rtt"]; f.Value < 20 {
		t.Errorf("RTT %v ms on a link with 10 ms each way", f.Value)
	}
}

// TestNDT7BenchInterrupted: Ctrl-C in the middle of a test stops the
// children, tears the link down and writes no figures.
func TestNDT7BenchInterrupted(t *testing.T) {
	exe := buildBench(t)
	root, work := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The CLI is never reached: the interrupt comes during the first
	// (agent) test.
	cmd := exec.CommandContext(ctx, exe, "ndt7", "-rates", "20", "-runs", "3", "-ceiling=false",
		"-ndt7-client", "/bin/false", "-root", root, "-workdir", work)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.HasPrefix(sc.Text(), "ping:") {
			break
		}
	}
	if len(leftovers(t, cmd.Process.Pid)) != 3 {
		t.Fatalf("link not up when expected; output: %q %s", seen, stderr.String())
	}
	// Let the first test get going, then interrupt it.
	deadline := time.Now().Add(time.Minute)
	for !agentRunning(t, work) {
		if time.Now().After(deadline) {
			t.Fatal("the agent's test never started")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("interrupted bench: %v, want exit status 1; stderr: %s", err, stderr.String())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Errorf("bench died of %v instead of cleaning up", ws.Signal())
	}
	if left := leftovers(t, cmd.Process.Pid); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, "bench", "out", "ndt7.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an interrupted run wrote figures (%v)", err)
	}
	// No helper (server, delay line) and no test (the agent's runner, built
	// into the work directory) may outlive the bench.
	for _, bin := range []string{exe, work} {
		out, _ := exec.Command("pgrep", "-f", bin).Output()
		if pids := strings.Fields(string(out)); len(pids) > 0 {
			t.Errorf("processes of %s still running: %v", bin, pids)
		}
	}
}

func agentRunning(t *testing.T, work string) bool {
	out, _ := exec.Command("pgrep", "-f", filepath.Join(work, "ndt7-agent-run")).Output()
	return len(strings.Fields(string(out))) > 0
}

func TestParseCLISummary(t *testing.T) {
	// The last line of `ndt7-client -format json` (internal/emitter.Summary).
	const summary = `{"ServerFQDN":"10.77.1.2:43895","ServerIP":"10.77.1.2","ClientIP":"10.77.2.2","Download":{"UUID":"x","Throughput":{"Value":93.06,"Unit":"Mbit/s"},"Latency":{"Value":20.4,"Unit":"ms"},"Retransmission":{"Value":0.1,"Unit":"%"}},"Upload":{"UUID":"y","Throughput":{"Value":94.71,"Unit":"Mbit/s"},"Latency":{"Value":20.5,"Unit":"ms"},"Retransmission":{"Value":0,"Unit":""}}}`
	for _, tc := range []struct {
		name     string
		out      string
		down, up float64
		err      bool
	}{
		{"summary last", `{"Key":"measurement","Value":{}}` + "\n" + summary + "\n", 93.06, 94.71, false},
		{"no trailing newline", summary, 93.06, 94.71, false},
		{"no summary", `{"Key":"measurement","Value":{}}` + "\n", 0, 0, true},
		{"download only", `{"Download":{"Throughput":{"Value":1,"Unit":"Mbit/s"}}}`, 0, 0, true},
		{"other unit", strings.ReplaceAll(summary, "Mbit/s", "kbit/s"), 0, 0, true},
		{"empty", "", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down, up, err := parseCLISummary([]byte(tc.out))
			if (err != nil) != tc.err || down != tc.down || up != tc.up {
				t.Errorf("= %v, %v, %v; want %v, %v, error %v", down, up, err, tc.down, tc.up, tc.err)
			}
		})
	}
}
