// Package bench owns what the benchmark scenarios under internal/bench
// share and nothing else: running the pod's real binaries as child
// processes the way a pod runs them (Start, Proc), building them the way
// `make build` does (Build), undoing what a scenario set up (Cleanups), and
// the arithmetic of its figures (Round, Median, Seconds, Load). The format
// of the figures themselves is internal/benchreport's; each scenario is a
// package of its own (footprint, ndt7, outbox, update), and
// cmd/radar-bench is the command that runs them.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/proctest"
)

// Cleanups runs registered functions in reverse order, once.
type Cleanups struct {
	mu  sync.Mutex
	fns []func()
}

// Add registers f to run at Run, before everything registered earlier.
func (c *Cleanups) Add(f func()) {
	c.mu.Lock()
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

// Run calls the registered functions, last first, and forgets them.
func (c *Cleanups) Run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// Build builds pkg (a path relative to the module root, the working
// directory) static into dir, the way `make build` does, and returns the
// binary's path. Without ldflags the binary carries proctest.TestVersion.
func Build(ctx context.Context, dir, pkg string, ldflags ...string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg)+"-"+RandHex(3))
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if len(ldflags) == 0 {
		ldflags = []string{"-X github.com/radarpod/radarpod/internal/buildinfo.Version=" + proctest.TestVersion}
	}
	if err := proctest.GoBuild(bctx, out, pkg, ldflags...); err != nil {
		return "", err
	}
	return out, nil
}

// RandHex is n random bytes in hex: names that runs of a scenario side by
// side (or a killed earlier run) do not collide on.
func RandHex(n int) string {
	b := make([]byte, n)
	f, err := os.Open("/dev/urandom")
	if err == nil {
		io.ReadFull(f, b)
		f.Close()
	}
	return fmt.Sprintf("%x", b)
}
