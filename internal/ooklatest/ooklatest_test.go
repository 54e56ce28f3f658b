package ooklatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

var required = []string{"--accept-license", "--accept-gdpr", "--format=json"}

func TestResultIsTheFixtureObject(t *testing.T) {
	var v struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(Result(), &v); err != nil || v.Type != "result" {
		t.Fatalf("Result() is not a result object: %v %q", err, v.Type)
	}
	if !bytes.Contains(Result(), []byte(`"jitter":0.72599999999999998`)) {
		t.Error("Result() lost the CLI's own number formatting")
	}
}

// TestScript runs the installed fake directly, as the runner will.
func TestScript(t *testing.T) {
	for _, tc := range []struct {
		mode       Mode
		args       []string
		exit       int
		stdoutHas  []byte
		stderrHas  string
		exactlyOut []byte
	}{
		{mode: ModeResult, args: required, exactlyOut: append(Result(), '\n')},
		{mode: ModeResult, args: append(required, "--ip=10.0.0.7"), exactlyOut: append(Result(), '\n')},
		{mode: ModeResultWithLogs, args: required, stdoutHas: Result()},
		{mode: ModeFail, args: required, exit: 2, stdoutHas: []byte(`"level":"error"`), stderrHas: FailStderr},
		{mode: ModeGarbage, args: required, stdoutHas: []byte("captive portal")},
		{mode: ModeTruncated, args: required, exactlyOut: Result()[:len(Result())/2]},
		{mode: ModeLogsOnly, args: required, stdoutHas: []byte(`"type":"log"`)},
		{mode: ModeFlood, args: required, stdoutHas: Result()},
		{mode: ModeResult, args: []string{"--accept-license", "--format=json"}, exit: 64, stderrHas: "required"},
		{mode: ModeResult, args: nil, exit: 64, stderrHas: "required"},
	} {
		t.Run(string(tc.mode)+"/"+strings.Join(tc.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			path := Install(t, dir, tc.mode)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(path, tc.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			switch {
			case tc.exit == 0 && err != nil:
				t.Fatalf("run: %v; stderr %s", err, stderr.String())
			case tc.exit != 0 && (!errors.As(err, &exitErr) || exitErr.ExitCode() != tc.exit):
				t.Fatalf("run: %v, want exit %d", err, tc.exit)
			}
			if tc.exactlyOut != nil && !bytes.Equal(stdout.Bytes(), tc.exactlyOut) {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.exactlyOut)
			}
			if tc.stdoutHas != nil && !bytes.Contains(stdout.Bytes(), tc.stdoutHas) {
				t.Errorf("stdout lacks %q: %.300q", tc.stdoutHas, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.stderrHas) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderrHas)
			}
			want := tc.args
			if want == nil {
				want = []string{}
			}
			if got := Args(t, dir); !reflect.DeepEqual(got, want) {
				t.Errorf("Args = %q, want %q", got, want)
			}
		})
	}
}

func TestCallsAccumulate(t *testing.T) {
	dir := t.TempDir()
	if Args(t, dir) != nil || Calls(t, dir) != nil {
		t.Fatal("calls recorded before any invocation")
	}
	path := Install(t, dir, ModeResult)
	exec.Command(path, required...).Run()
	Install(t, dir, ModeFail)
	exec.Command(path, "a b", "c").Run()
	calls := Calls(t, dir)
	if len(calls) != 2 || !reflect.DeepEqual(calls[0], required) || !reflect.DeepEqual(calls[1], []string{"a b", "c"}) {
		t.Errorf("Calls = %q", calls)
	}
}

func TestHangRecordsItsProcesses(t *testing.T) {
	dir := t.TempDir()
	path := Install(t, dir, ModeHang)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, path, required...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for deadline := time.Now().Add(30 * time.Second); len(pids) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pids = PIDs(t, dir)
	}
	if len(pids) != 2 || pids[0] != cmd.Process.Pid {
		t.Fatalf("PIDs = %v, script pid %d", pids, cmd.Process.Pid)
	}
	for _, pid := range pids {
		if !Alive(pid) {
			t.Errorf("pid %d not alive while hanging", pid)
		}
	}
	// Killing only the script (no process group) orphans its child: the
	// reason the runner must kill the group.
	cancel()
	cmd.Wait()
	if Alive(pids[0]) {
		t.Error("script survived its kill")
	}
	if !Alive(pids[1]) {
		t.Error("child died with the script alone; the fake would not catch a runner that forgets the group")
	}
	if err := syscall.Kill(pids[1], syscall.SIGKILL); err != nil {
		t.Errorf("kill orphaned child: %v", err)
	}
}

func TestUniqueModeNumbersEveryInvocation(t *testing.T) {
	dir := t.TempDir()
	path := Install(t, dir, ModeUnique)
	for n := 1; n <= 3; n++ {
		out, err := exec.Command(path, required...).Output()
		if err != nil {
			t.Fatalf("run %d: %v", n, err)
		}
		if want := append(UniqueResult(n), '\n'); !bytes.Equal(out, want) {
			t.Fatalf("run %d printed\n%s\nwant\n%s", n, out, want)
		}
	}
	// --servers answers a list and takes no number.
	out, err := exec.Command(path, append([]string{"--servers"}, required...)...).Output()
	if err != nil || !bytes.Contains(out, []byte(`"type":"serverList"`)) {
		t.Fatalf("--servers: %v %s", err, out)
	}
	// Concurrent invocations never share a number.
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- exec.Command(path, required...).Run() }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := Emitted(t, dir); !reflect.DeepEqual(got, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("Emitted = %v", got)
	}
}

func TestUniqueResultIsRecognisable(t *testing.T) {
	for _, n := range []int{1, 42, 999999} {
		var r struct {
			Download struct{ Bandwidth float64 } `json:"download"`
			Result   struct{ ID, URL string }    `json:"result"`
		}
		if err := json.Unmarshal(UniqueResult(n), &r); err != nil {
			t.Fatal(err)
		}
		if got, ok := UniqueSeq(r.Result.ID); !ok || got != n || !strings.HasSuffix(r.Result.URL, r.Result.ID) {
			t.Errorf("n=%d: result %+v gives seq %d %v", n, r.Result, got, ok)
		}
		// The figure a pod computes from the result (bytes/s → Mbit/s).
		if got, ok := UniqueSeqOfDownload(r.Download.Bandwidth * 8 / 1e6); !ok || got != n {
			t.Errorf("n=%d: download %v gives seq %d %v", n, r.Download.Bandwidth, got, ok)
		}
	}
	for _, id := range []string{"ea8e5ec3-e2fa-4994-a9fe-559c8d4dc6fd", "00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-00000000001x"} {
		if _, ok := UniqueSeq(id); ok {
			t.Errorf("UniqueSeq(%q) accepted", id)
		}
	}
	if _, ok := UniqueSeqOfDownload(402.86); ok {
		t.Error("UniqueSeqOfDownload accepted the fixture's own figure")
	}
}

func TestSetDelayHoldsTheOutput(t *testing.T) {
	dir := t.TempDir()
	path := Install(t, dir, ModeResult)
	SetDelay(t, dir, 300*time.Millisecond)
	// A file, not a buffer: it can be looked at while the fake runs.
	outPath := filepath.Join(t.TempDir(), "stdout")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(path, required...)
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Still silent well inside the delay; nothing asserts how long it took.
	time.Sleep(50 * time.Millisecond)
	if b, _ := os.ReadFile(outPath); len(b) != 0 {
		t.Fatalf("printed before the delay: %q", b)
	}
	err = cmd.Wait()
	if b, _ := os.ReadFile(outPath); err != nil || !bytes.Equal(b, append(Result(), '\n')) {
		t.Fatalf("after the delay: %v %q", err, b)
	}
	SetDelay(t, dir, 0)
	if b, err := exec.Command(path, required...).Output(); err != nil || !bytes.Equal(b, append(Result(), '\n')) {
		t.Fatalf("without delay: %v %q", err, b)
	}
}

// TestEnvironIsWhatTheCLIWasGiven: the fake records the environment it
// was started with, exactly (not the shell's, which adds PWD).
func TestEnvironIsWhatTheCLIWasGiven(t *testing.T) {
	dir := t.TempDir()
	if Environ(t, dir) != nil {
		t.Fatal("an environment recorded before any invocation")
	}
	path := Install(t, dir, ModeResult)
	cmd := exec.Command(path, required...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SENTRY_DSN=https://key@o1.ingest.sentry.io/1", "WITH_SPACE=a b"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := Environ(t, dir); !reflect.DeepEqual(got, cmd.Env) {
		t.Errorf("Environ = %q, want %q", got, cmd.Env)
	}
	cmd = exec.Command(path, required...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := Environ(t, dir); !reflect.DeepEqual(got, cmd.Env) {
		t.Errorf("Environ of the second call = %q, want %q", got, cmd.Env)
	}
}
