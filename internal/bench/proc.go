package bench

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/proctest"
)

// Proc is a daemon started for a benchmark, in its own process group.
type Proc struct {
	cmd  *exec.Cmd
	out  *Tail
	done chan struct{}
	err  error
}

// Start runs bin with exactly env (plus PATH), as a pod would: nothing of
// the benchmark's own environment leaks in.
func Start(bin string, env map[string]string, args ...string) (*Proc, error) {
	return StartTo(bin, env, nil, args...)
}

// StartTo is Start that also copies the output to w.
func StartTo(bin string, env map[string]string, w io.Writer, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = proctest.Env(env)
	out := &Tail{Max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if w != nil {
		mw := io.MultiWriter(out, w)
		cmd.Stdout, cmd.Stderr = mw, mw
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Proc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// StartWithLines is Start that also hands every output line to line.
func StartWithLines(bin string, env map[string]string, line func(string), args ...string) (*Proc, error) {
	pr, pw := io.Pipe()
	p, err := StartTo(bin, env, pw, args...)
	if err != nil {
		pw.Close()
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		<-p.done
		pw.Close()
	}()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM (what Docker sends), then SIGKILL to the group after 15 s.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Path is the binary the process runs.
func (p *Proc) Path() string { return p.cmd.Path }

// Output is the end of what the process printed: enough to explain a failure.
func (p *Proc) Output() string { return p.out.String() }

// Tail keeps the last Max bytes written: enough to explain a failure,
// bounded however chatty the process.
type Tail struct {
	Max int
	mu  sync.Mutex
	b   []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.Max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

// String returns the last Max bytes written.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > t.Max {
		b = b[len(b)-t.Max:]
	}
	return string(b)
}
