package footprint

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestMemoryOfThisProcess(t *testing.T) {
	rss, hwm, err := memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Fatalf("VmRSS %d, VmHWM %d", rss, hwm)
	}
}

// cpuTime reads the same clock the kernel reports through getrusage.
func TestCPUTimeOfThisProcess(t *testing.T) {
	usage := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := usage()
	x := 0
	for usage() < before+300*time.Millisecond { // burn CPU, not wall time
		for i := range 100000 {
			x += i
		}
	}
	got, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// /proc counts in ticks (10 ms) and per thread as the kernel samples.
	if after := usage(); got < before+200*time.Millisecond || got > after+50*time.Millisecond {
		t.Fatalf("cpuTime = %s, want between %s and %s (getrusage; %d)", got, before+200*time.Millisecond, after+50*time.Millisecond, x)
	}
}
