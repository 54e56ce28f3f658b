// Package proctest builds this module's commands once per test process and
// runs them as real child processes, so tests exercise the shipped binary:
// its exit codes, signals, kill -9 and restarts — also the binaries of the
// pods' other architectures (arm64, armv7), cross-compiled and run under
// Debian's qemu-user.
package proctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestVersion is the version stamped into binaries built by Build.
const TestVersion = "1.0.0"

var (
	mu     sync.Mutex
	builds = map[string]*built{}
	dir    string
)

// ModuleRoot is the directory of the module's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// GoBuild builds a static (CGO_ENABLED=0, like production) linux binary of
// pkg, a path relative to the module root such as ./cmd/radar-agent.
func GoBuild(ctx context.Context, out, pkg string, ldflags ...string) error {
	return goBuild(ctx, out, pkg, false, Platform{}, ldflags)
}

// Platform is a linux platform to cross-compile for. The zero Platform is
// this machine's.
type Platform struct {
	// GOARCH is "arm64", "arm", ...
	GOARCH string
	// GOARM is the ARM version for GOARCH=arm ("7" for linux/arm/v7).
	GOARM string
}

// The platforms pods run on besides amd64 (Raspberry Pis), as the release
// images name them.
var (
	LinuxARM64 = Platform{GOARCH: "arm64"}
	LinuxARMv7 = Platform{GOARCH: "arm", GOARM: "7"}
)

// String is the OCI platform name ("linux/arm/v7").
func (p Platform) String() string {
	arch := p.GOARCH
	if arch == "" {
		arch = runtime.GOARCH
	}
	s := "linux/" + arch
	if p.GOARM != "" {
		s += "/v" + p.GOARM
	}
	return s
}

// Env is the environment that makes the go command build for p (nothing
// for this machine's platform).
func (p Platform) Env() []string {
	if p.GOARCH == "" {
		return nil
	}
	// GOARM is set even when empty, so one inherited from the test's
	// environment cannot leak into another platform's build.
	return []string{"GOARCH=" + p.GOARCH, "GOARM=" + p.GOARM}
}

func goBuild(ctx context.Context, out, pkg string, cgo bool, p Platform, ldflags []string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	flags := append([]string{"-s", "-w"}, ldflags...)
	// Production builds are static and -trimpath, as the Makefile builds
	// them. The cgo development tools build like the tests themselves
	// (-race, no -trimpath): they link packages the test build has
	// compiled already, where a build of their own compiled the whole
	// dependency graph once more (minutes of CPU on a cold CI machine), and
	// a data race in a tool fails the test that runs it.
	mode := "-trimpath"
	if cgo {
		mode = "-race"
	}
	cmd := exec.CommandContext(ctx, "go", "build", mode, "-o", out, "-ldflags", strings.Join(flags, " "), pkg)
	cmd.Dir = root
	cgoEnabled := "CGO_ENABLED=0"
	if cgo {
		cgoEnabled = "CGO_ENABLED=1"
	}
	cmd.Env = append(append(os.Environ(), cgoEnabled, "GOOS=linux"), p.Env()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", pkg, p, err, stderr.String())
	}
	return nil
}

// Build returns the path of pkg built with the given ldflags, building it
// at most once per test process. Call Cleanup from TestMain to delete builds.
func Build(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	return build(t, pkg, false, Platform{}, ldflags)
}

// BuildFor is Build for another platform (static, like the release
// binaries for that platform); run the result with an Emulator.
func BuildFor(t testing.TB, pkg string, p Platform, ldflags ...string) string {
	t.Helper()
	return build(t, pkg, false, p, ldflags)
}

// BuildCgo is Build for development tools that need cgo (radar-devserver
// and radar-bench embed the ndt-server), with the race detector.
func BuildCgo(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	return build(t, pkg, true, Platform{}, ldflags)
}

func build(t testing.TB, pkg string, cgo bool, p Platform, ldflags []string) string {
	t.Helper()
	if len(ldflags) == 0 {
		ldflags = []string{"-X github.com/radarpod/radarpod/internal/buildinfo.Version=" + TestVersion}
	}
	key := fmt.Sprint(pkg, "\x00", cgo, "\x00", p, "\x00", strings.Join(ldflags, "\x00"))
	mu.Lock()
	if dir == "" {
		d, err := os.MkdirTemp("", "radarpod-proctest-")
		if err != nil {
			mu.Unlock()
			t.Fatal(err)
		}
		dir = d
	}
	b, ok := builds[key]
	if !ok {
		b = &built{path: filepath.Join(dir, fmt.Sprintf("%s-%d", filepath.Base(pkg), len(builds)))}
		builds[key] = b
	}
	mu.Unlock()
	// Different builds run at once (parallel tests wanting an arm64 and an
	// armv7 agent); callers wanting the same one wait for the first.
	b.once.Do(func() {
		// Generous: a cold cross-build of the whole dependency graph on a
		// busy 2-core machine.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		b.err = goBuild(ctx, b.path, pkg, cgo, p, ldflags)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// built is one build of a package, made once.
type built struct {
	once sync.Once
	path string
	err  error
}

// Cleanup deletes every build of this process.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Process is a running command.
type Process struct {
	Cmd  *exec.Cmd
	out  *LogBuffer
	done chan struct{}
	err  error
}

// Start runs bin with exactly env (nothing inherited but PATH) and args.
// The process is killed when the test ends.
func Start(t testing.TB, bin string, env map[string]string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = Env(env)
	out := &LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Process{Cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(bin), p.Output())
		}
	})
	return p
}

// Env renders env as KEY=value pairs, sorted, plus PATH.
func Env(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Output is everything the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Wait waits up to timeout for the exit and returns the exit code.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("still running after %v", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), nil
	}
	if p.err != nil {
		return -1, p.err
	}
	return 0, nil
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Run runs bin to completion (up to timeout) and returns exit code and output.
func Run(t testing.TB, bin string, env map[string]string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	p := Start(t, bin, env, args...)
	code, err := p.Wait(timeout)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, p.Output())
	}
	return code, p.Output()
}

// LogBuffer is a log destination that goroutines and processes' output
// pipes may share with the test reading it. Max, when set, bounds what it
// keeps (later writes are dropped, still reported written): a chatty peer
// must not grow a test's memory without end.
type LogBuffer struct {
	Max int
	mu  sync.Mutex
	b   bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Max > 0 && l.b.Len() > l.Max {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// WaitFor polls cond until it holds or timeout passes; it fails the test
// with what on timeout. Generous timeouts keep shared machines from
// flaking; nothing asserts on how fast cond became true.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address ("127.0.0.1:port") nothing listens
// on now, for a process under test to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// FreeLoopbackAddr is FreeAddr for callers outside a test (radar-bench).
//
// The port comes from below the kernel's ephemeral range: a port the
// kernel hands out for "port 0" is also what it hands out for outgoing
// connections, so between this call and the process under test binding
// it, any of the many connections the tests make could take it ("address
// already in use", seen with eight fault drills in parallel). Below the
// range only another listener can, and a random pick makes that unlikely.
func FreeLoopbackAddr() (string, error) {
	lo := ephemeralLow()
	for range 100 {
		port := 10000 + rand.IntN(lo-10000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr, nil
	}
	return "", fmt.Errorf("find a free loopback port below %d: none free in 100 tries", lo)
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default is 32768).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				lo = n
			}
		}
	}
	return lo
}

// FreePort is FreeAddr's port: nothing listens on 127.0.0.1 there, so a
// connection to it is refused (the peer that is down).
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
