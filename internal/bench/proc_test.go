package bench

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// A benchmark's daemon sees exactly the environment it is given (plus
// PATH), and its output reaches both the tail and the line callback.
func TestStartWithLinesRunsWithExactlyEnv(t *testing.T) {
	t.Setenv("RADAR_BENCH_LEAK", "from the benchmark")
	var mu sync.Mutex
	var lines []string
	p, err := StartWithLines("/bin/sh", map[string]string{"RADAR_POD_NAME": "bench"}, func(s string) {
		mu.Lock()
		lines = append(lines, s)
		mu.Unlock()
	}, "-c", `echo "pod=$RADAR_POD_NAME"; echo "leak=$RADAR_BENCH_LEAK"`)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(lines)
		mu.Unlock()
		if n == 2 && p.Exited() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lines %q, exited %v", lines, p.Exited())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"pod=bench", "leak="}; strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", lines, want)
	}
	if got := p.Output(); got != "pod=bench\nleak=\n" {
		t.Errorf("output %q", got)
	}
}

// Stop ends a daemon that honours SIGTERM, as the pod's binaries do.
func TestStopTerminates(t *testing.T) {
	p, err := Start("/bin/sleep", nil, "600")
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Fatal("sleep exited at once")
	}
	p.Stop()
	if !p.Exited() {
		t.Fatal("still running after Stop")
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	tail := &Tail{Max: 8}
	for _, s := range []string{"0123", "4567", "89ab", "cdefghijklmnop"} {
		tail.Write([]byte(s))
	}
	if got := tail.String(); got != "ijklmnop" {
		t.Errorf("tail %q, want the last 8 bytes", got)
	}
}

func TestCleanupsRunLastFirstOnce(t *testing.T) {
	var c Cleanups
	var order []int
	for i := range 3 {
		c.Add(func() { order = append(order, i) })
	}
	c.Run()
	c.Run()
	if len(order) != 3 || order[0] != 2 || order[1] != 1 || order[2] != 0 {
		t.Errorf("ran %v, want [2 1 0]", order)
	}
}
