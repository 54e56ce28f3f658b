package handoff

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

// The agent owns the shared volume and may plant anything at the names the
// updater reads and writes. hostileShapes are what it can make without
// privileges (no device nodes: cap_drop ALL), each of which the updater's
// readers must refuse promptly without following a link, blocking on a
// FIFO or reading more than the size cap.
var hostileShapes = []struct {
	name string
	// plant makes the shape at path; elsewhere is a directory outside the
	// data dir (a link's target lives there). want is the error readers
	// must return.
	plant func(t *testing.T, path, elsewhere string)
	want  error
}{
	{"dangling symlink", func(t *testing.T, path, elsewhere string) {
		must(t, os.Symlink(filepath.Join(elsewhere, "missing"), path))
	}, ErrNotRegular},
	{"live symlink", func(t *testing.T, path, elsewhere string) {
		target := filepath.Join(elsewhere, "victim.json")
		must(t, os.WriteFile(target, victim, 0o600))
		must(t, os.Symlink(target, path))
	}, ErrNotRegular},
	{"FIFO", func(t *testing.T, path, _ string) {
		must(t, syscall.Mkfifo(path, 0o644))
	}, ErrNotRegular},
	{"directory", func(t *testing.T, path, _ string) {
		must(t, os.Mkdir(path, 0o755))
		must(t, os.WriteFile(filepath.Join(path, "x"), victim, 0o644))
	}, ErrNotRegular},
	{"unix socket", func(t *testing.T, path, _ string) {
		// A socket file outlives its listener when not unlinked: what a
		// crashed or hostile process leaves behind.
		fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		must(t, err)
		must(t, syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}))
		syscall.Close(fd)
	}, ErrNotRegular},
	{"1 GiB sparse file", func(t *testing.T, path, _ string) {
		f, err := os.Create(path)
		must(t, err)
		// Valid JSON at the start, so a reader that reads a prefix and
		// stops would accept it.
		_, err = f.Write(victim)
		must(t, err)
		must(t, f.Truncate(1<<30))
		must(t, f.Close())
	}, ErrTooLarge},
}

// victim is what a planted link points at: a valid request, status and
// lock all at once, so following the link would be accepted.
var victim = func() []byte {
	far := time.Now().Add(time.Hour).UTC()
	b, _ := json.Marshal(map[string]any{
		"version": "9.9.9", "source": "channel", "requested_at": far,
		"state": "succeeded", "to_version": "9.9.9", "updated_at": far,
		"pid": 1, "holder": "victim", "since": far, "expires_at": far,
	})
	return b
}()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// within runs fn, failing the test if it does not return promptly (a FIFO
// opened for reading blocks until a writer comes, which the agent never
// sends: the updater's loop would hang for good).
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

func TestReadersRefuseHostileFiles(t *testing.T) {
	readers := []struct {
		file string
		read func(dir string) (accepted bool, err error)
	}{
		{RequestFile, func(dir string) (bool, error) {
			r, ok, err := ReadRequest(dir)
			return ok && err == nil && r.Version != "", err
		}},
		{StatusFile, func(dir string) (bool, error) {
			s, ok, err := ReadStatus(dir)
			return ok && err == nil && s.State != "", err
		}},
		{TestLockFile, func(dir string) (bool, error) {
			// Judged at an instant when the victim's lock has expired:
			// reading it through the link would say "not active".
			active, info, err := LockActive(filepath.Join(dir, TestLockFile), wallclock.Now().Add(2*time.Hour), 3*time.Hour)
			return !active || info.Holder != "", err
		}},
	}
	for _, r := range readers {
		for _, shape := range hostileShapes {
			t.Run(r.file+"/"+shape.name, func(t *testing.T) {
				dir, elsewhere := t.TempDir(), t.TempDir()
				path := filepath.Join(dir, r.file)
				shape.plant(t, path, elsewhere)
				var accepted bool
				var err error
				within(t, "reading "+r.file, func() { accepted, err = r.read(dir) })
				if accepted {
					t.Fatalf("%s planted as a %s was read and accepted", r.file, shape.name)
				}
				if !errors.Is(err, shape.want) {
					t.Fatalf("error = %v, want %v", err, shape.want)
				}
			})
		}
	}
}

// The status file is the one file the updater writes into the shared
// volume: a temporary file created exclusively, renamed over the name. A
// planted link is replaced, not followed (its target stays as it was), a
// special file is replaced, and a directory makes the write fail without
// touching it.
func TestStatusWriteReplacesHostileFiles(t *testing.T) {
	want := Status{State: StateRefused, ToVersion: "2.0.0", Reason: "revoked: test"}
	for _, shape := range hostileShapes {
		t.Run(shape.name, func(t *testing.T) {
			dir, elsewhere := t.TempDir(), t.TempDir()
			path := filepath.Join(dir, StatusFile)
			shape.plant(t, path, elsewhere)
			var err error
			within(t, "writing the status", func() { err = WriteStatus(dir, want) })
			if b, rerr := os.ReadFile(filepath.Join(elsewhere, "victim.json")); rerr == nil && string(b) != string(victim) {
				t.Fatalf("the link's target was written through: %q", b)
			}
			if _, rerr := os.Stat(filepath.Join(elsewhere, "missing")); !os.IsNotExist(rerr) {
				t.Fatalf("the dangling link's target was created: %v", rerr)
			}
			if shape.name == "directory" {
				if err == nil {
					t.Fatal("writing the status over a directory succeeded")
				}
				if b, _ := os.ReadFile(filepath.Join(path, "x")); string(b) != string(victim) {
					t.Fatal("the directory was touched")
				}
				return
			}
			if err != nil {
				t.Fatalf("WriteStatus: %v", err)
			}
			st, err := os.Lstat(path)
			if err != nil || !st.Mode().IsRegular() || st.Size() > maxFileSize {
				t.Fatalf("after the write the status is %v (%v)", st.Mode(), err)
			}
			got, ok, err := ReadStatus(dir)
			if !ok || err != nil || got.State != want.State || got.Reason != want.Reason {
				t.Fatalf("status read back: %+v %v %v", got, ok, err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".tmp-") {
					t.Errorf("temporary file left behind: %s", e.Name())
				}
			}
		})
	}
}

// ReadFile does not follow a link at any component of its path either: the
// agent may replace a directory the updater reads from (the old
// updater-state directory) with a link to anywhere.
func TestReadFileRefusesALinkedDirectory(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(elsewhere, "crl-state.json"), victim, 0o600))
	must(t, os.Symlink(elsewhere, filepath.Join(dir, "updater-state")))
	if b, err := ReadFile(dir, "updater-state/crl-state.json", maxFileSize); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("read through a linked directory: %q, %v", b, err)
	}
	must(t, os.Remove(filepath.Join(dir, "updater-state")))
	must(t, os.Mkdir(filepath.Join(dir, "updater-state"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "updater-state", "crl-state.json"), victim, 0o600))
	if b, err := ReadFile(dir, "updater-state/crl-state.json", maxFileSize); err != nil || string(b) != string(victim) {
		t.Fatalf("plain file: %q, %v", b, err)
	}
	if _, err := ReadFile(dir, "updater-state/none.json", maxFileSize); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	for _, bad := range []string{"../x", "a//b", "/etc/passwd", "."} {
		if _, err := ReadFile(dir, bad, maxFileSize); err == nil {
			t.Errorf("ReadFile(%q) accepted", bad)
		}
	}
}
