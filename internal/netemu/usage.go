package netemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Usage is what one process used.
type Usage struct {
	User, System time.Duration
	// MaxRSS is the peak resident set size, in bytes.
	MaxRSS int64
}

// CPU is user plus system time.
func (u Usage) CPU() time.Duration { return u.User + u.System }

// TimeBinary is GNU time, the forking parent that Measure relies on.
const TimeBinary = "/usr/bin/time"

// Measured is a command whose CPU time and peak RSS are measured exactly.
//
// The rusage Go reports for its own children is wrong for peak RSS: Go
// starts children with vfork (CLONE_VM), and on execve the kernel folds the
// high-water RSS of the shared, parent's memory into the child's maxrss, so
// every child "peaks" at least as high as its parent ever did (the same
// holds for `ip netns exec` in between). GNU time forks instead, which
// starts the child's count afresh at time's own ~1 MiB, and reports the
// child's rusage as wait4 returns it.
type Measured struct {
	*exec.Cmd
	report string
}

// Measure returns a command that runs name inside ns under GNU time. The
// command and everything it starts form one process group: cancelling ctx
// interrupts the whole group (GNU time itself ignores SIGINT while it
// waits), and the link's Close kills whatever is left.
func (ns Namespace) Measure(ctx context.Context, name string, args ...string) (*Measured, error) {
	if _, err := os.Stat(TimeBinary); err != nil {
		return nil, fmt.Errorf("measure %s: GNU time is required (apt-get install time): %w", name, err)
	}
	f, err := os.CreateTemp("", "netemu-usage-*")
	if err != nil {
		return nil, fmt.Errorf("measure %s: %w", name, err)
	}
	f.Close()
	targv := append([]string{"-f", "%U %S %M", "-o", f.Name(), name}, args...)
	cmd := ns.Command(ctx, TimeBinary, targv...)
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	return &Measured{Cmd: cmd, report: f.Name()}, nil
}

// Usage reads what the command used; call it once, after Wait.
func (m *Measured) Usage() (Usage, error) {
	defer os.Remove(m.report)
	b, err := os.ReadFile(m.report)
	if err != nil {
		return Usage{}, fmt.Errorf("usage report: %w", err)
	}
	return parseTimeReport(string(b))
}

// parseTimeReport reads GNU time's "%U %S %M" line, the last one (a
// "Command exited with non-zero status" line may precede it).
func parseTimeReport(s string) (Usage, error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 3 {
		return Usage{}, fmt.Errorf("usage report %q: want user, system and max RSS", s)
	}
	user, err1 := strconv.ParseFloat(f[0], 64)
	sys, err2 := strconv.ParseFloat(f[1], 64)
	kib, err3 := strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Usage{}, fmt.Errorf("usage report %q: %w", s, err)
	}
	return Usage{
		User:   time.Duration(user * float64(time.Second)),
		System: time.Duration(sys * float64(time.Second)),
		MaxRSS: kib << 10,
	}, nil
}
