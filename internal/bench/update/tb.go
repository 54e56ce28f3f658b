package update

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/radarpod/radarpod/internal/bench"
)

// tb lets the test harnesses (dockertest, registrytest, releasetest),
// which take a testing.TB, run inside a benchmark: cleanups are kept and
// run at the end, a Fatal stops the benchmark (through run) after them.
type tb struct {
	testing.TB // nil: only the methods below are used by those packages
	ctx        context.Context
	log        io.Writer
	cl         bench.Cleanups
	mu         sync.Mutex
	failed     bool
	tmp        string
}

// fatal carries a Fatal from where it is called to run.
type fatal struct{ msg string }

func newTB(ctx context.Context, log io.Writer) *tb { return &tb{ctx: ctx, log: log} }

// run calls f, then every cleanup; it returns f's fatal error, if any.
func (t *tb) run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if fe, ok := r.(fatal); ok {
				err = fmt.Errorf("%s", fe.msg)
			} else {
				err = fmt.Errorf("panic: %v", r)
			}
		}
		t.cl.Run()
		if t.tmp != "" {
			os.RemoveAll(t.tmp)
		}
		if err == nil && t.Failed() {
			err = fmt.Errorf("errors reported (see above)")
		}
	}()
	f()
	return nil
}

func (t *tb) check(err error, what string) {
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (t *tb) Helper()                  {}
func (t *tb) Name() string             { return "radar-bench" }
func (t *tb) Context() context.Context { return t.ctx }
func (t *tb) Cleanup(f func())         { t.cl.Add(f) }
func (t *tb) Log(args ...any)          { fmt.Fprintln(t.log, args...) }
func (t *tb) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, format+"\n", args...)
}
func (t *tb) Error(args ...any) { t.fail(); fmt.Fprintln(t.log, args...) }
func (t *tb) Errorf(format string, args ...any) {
	t.fail()
	fmt.Fprintf(t.log, format+"\n", args...)
}
func (t *tb) Fatal(args ...any) { t.fail(); panic(fatal{fmt.Sprint(args...)}) }
func (t *tb) Fatalf(format string, args ...any) {
	t.fail()
	panic(fatal{fmt.Sprintf(format, args...)})
}
func (t *tb) FailNow() { t.fail(); panic(fatal{"failed"}) }
func (t *tb) Fail()    { t.fail() }
func (t *tb) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *tb) fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}
func (t *tb) TempDir() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tmp == "" {
		d, err := os.MkdirTemp("", "radar-bench-update-")
		if err != nil {
			panic(fatal{err.Error()})
		}
		t.tmp = d
	}
	d, err := os.MkdirTemp(t.tmp, "")
	if err != nil {
		panic(fatal{err.Error()})
	}
	return d
}
