//go:build linux

package netemu

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// childAlloc is a test-binary mode that touches N MiB, then spins until it
// has used 200 ms of CPU.
const childAlloc = "netemu-alloc"

func allocAndSpin(mib string) int {
	n, err := strconv.Atoi(mib)
	if err != nil {
		return 2
	}
	buf := make([]byte, n<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	var ru syscall.Rusage
	for {
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= 200*time.Millisecond {
			break
		}
		for i := 0; i < 1<<20; i++ {
			buf[i%len(buf)]++
		}
	}
	runtime.KeepAlive(buf)
	return 0
}

func TestMeasureReportsTheChildsOwnUsage(t *testing.T) {
	l := newLink(t, Config{})
	// Make this process's high-water RSS large: a child started the usual
	// way (vfork) would report it as its own peak.
	ballast := make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	defer func() { _ = ballast[len(ballast)-1] }()

	for _, tc := range []struct {
		name         string
		argv         []string
		minRSS       int64
		maxRSS       int64
		minCPU       time.Duration
		wantExitCode int
	}{
		// /bin/true peaks around 1 MiB; anything near 64 MiB is the parent's.
		{"true", []string{"/bin/true"}, 1, 16 << 20, 0, 0},
		{"false", []string{"/bin/false"}, 1, 16 << 20, 0, 1},
		// No upper bound: under -race the test binary's memory is several
		// times what it touches.
		{"alloc 48 MiB", []string{os.Args[0], childAlloc, "48"}, 48 << 20, 1 << 40, 200 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := l.Client.Measure(testCtx(t), tc.argv[0], tc.argv[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			err = cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.wantExitCode {
				t.Fatalf("exit code %d (%v), want %d", code, err, tc.wantExitCode)
			}
			u, err := cmd.Usage()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %+v", tc.name, u)
			if u.MaxRSS < tc.minRSS || u.MaxRSS > tc.maxRSS {
				t.Errorf("peak RSS %d MiB, want %d–%d MiB", u.MaxRSS>>20, tc.minRSS>>20, tc.maxRSS>>20)
			}
			if u.CPU() < tc.minCPU {
				t.Errorf("CPU %s, want at least %s", u.CPU(), tc.minCPU)
			}
		})
	}
}

func TestMeasureCancelInterruptsTheWholeTree(t *testing.T) {
	l := newLink(t, Config{})
	ctx, cancel := context.WithCancel(testCtx(t))
	cmd, err := l.Client.Measure(ctx, "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// time and its sleep child are both in the namespace.
	deadline := time.Now().Add(30 * time.Second)
	for len(nsPIDs(t, l.Client.Name)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("processes in the client namespace: %v", nsPIDs(t, l.Client.Name))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	cmd.Wait()
	cmd.Usage()
	// GNU time ignores SIGINT; only a group-wide interrupt ends its child
	// too, without waiting for the link's teardown to kill it.
	if pids := nsPIDs(t, l.Client.Name); len(pids) != 0 {
		t.Errorf("still running in the client namespace after cancel: %v", pids)
	}
}

func TestParseTimeReport(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Usage
		err  bool
	}{
		{"0.71 0.05 16488\n", Usage{User: 710 * time.Millisecond, System: 50 * time.Millisecond, MaxRSS: 16488 << 10}, false},
		{"Command exited with non-zero status 1\n0.00 0.00 8788\n", Usage{MaxRSS: 8788 << 10}, false},
		{"Command terminated by signal 2\n0.01 0.00 900", Usage{User: 10 * time.Millisecond, MaxRSS: 900 << 10}, false},
		{"", Usage{}, true},
		{"0.1 0.2\n", Usage{}, true},
		{"a b c\n", Usage{}, true},
	} {
		got, err := parseTimeReport(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseTimeReport(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
