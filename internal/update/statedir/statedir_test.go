package statedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func open(t *testing.T, path string) *Dir {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestReadWriteRemoveMoveAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	d := open(t, path)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir created as %v (%v), want 0700", st.Mode(), err)
	}
	if _, err := d.ReadFile("journal.json", 1024); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := d.WriteJSON("journal.json", map[string]int{"a": 1}, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := d.ReadFile("journal.json", 1024)
	if err != nil || string(b) != "{\n  \"a\": 1\n}\n" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if _, err := d.ReadFile("journal.json", 4); err == nil {
		t.Fatal("a file over the cap was read")
	}
	if ok, err := d.Exists("journal.json"); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	moved, err := d.MoveAside("journal.json", ".rejected")
	if err != nil || moved != filepath.Join(path, "journal.json.rejected") {
		t.Fatalf("MoveAside = %q, %v", moved, err)
	}
	if moved, err := d.MoveAside("journal.json", ".rejected"); moved != "" || err != nil {
		t.Fatalf("MoveAside of nothing = %q, %v", moved, err)
	}
	if err := d.Remove("journal.json.rejected"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("journal.json.rejected"); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
	if err := d.Write("../escape", []byte("x"), 0o600); err == nil {
		t.Fatal("a name outside the directory was written")
	}
}

// Replacing the directory at the path (what the agent did on the old
// layout: rmdir the mount point, mkdir, write forged state) is noticed
// before every use and refused; the forged files are never read, and
// nothing is written into the replacement.
func TestReplacedDirectoryIsRefused(t *testing.T) {
	parent := t.TempDir()
	path := filepath.Join(parent, "state")
	d := open(t, path)
	if err := d.Write("crl-state.json", []byte("genuine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, filepath.Join(parent, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(); !errors.Is(err, ErrChanged) {
		t.Fatalf("Check after the directory was moved away: %v", err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "crl-state.json"), []byte("forged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := d.ReadFile("crl-state.json", 1024); !errors.Is(err, ErrChanged) {
		t.Fatalf("read after the swap: %q, %v", b, err)
	}
	if err := d.Write("journal.json", []byte("x"), 0o600); !errors.Is(err, ErrChanged) {
		t.Fatalf("write after the swap: %v", err)
	}
	if err := d.Touch("heartbeat", time.Now(), nil); !errors.Is(err, ErrChanged) {
		t.Fatalf("touch after the swap: %v", err)
	}
	for _, op := range []func() error{
		func() error { return d.Remove("crl-state.json") },
		func() error { _, err := d.MoveAside("crl-state.json", ".x"); return err },
		func() error { _, err := d.Exists("crl-state.json"); return err },
		func() error { return d.WriteJSON("x", 1, 0o600) },
	} {
		if err := op(); !errors.Is(err, ErrChanged) {
			t.Errorf("operation after the swap: %v", err)
		}
	}
	entries, _ := os.ReadDir(path)
	if len(entries) != 1 {
		t.Errorf("the replacement directory holds %d entries, want only the forged file", len(entries))
	}
	if b, _ := os.ReadFile(filepath.Join(parent, "moved", "crl-state.json")); string(b) != "genuine" {
		t.Errorf("the real state changed: %q", b)
	}
	msg := d.Check().Error()
	for _, want := range []string{"RADAR_UPDATER_STATE_DIR", path, "inode"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the reason does not say %q: %s", want, msg)
		}
	}
}

// The real thing: the state directory is a mount, and the mount goes away
// underneath (rmdir of a mount point from another mount namespace
// detaches it lazily, as umount -l does; the path then shows the
// directory below). Needs root, as `make test` runs.
func TestDetachedMountIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", path, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs (the tests run as root, as make test does): %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			syscall.Unmount(path, syscall.MNT_DETACH)
		}
	})
	d := open(t, path)
	if err := d.Write("crl-state.json", []byte("genuine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if err := os.WriteFile(filepath.Join(path, "crl-state.json"), []byte("forged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := d.ReadFile("crl-state.json", 1024); !errors.Is(err, ErrChanged) {
		t.Fatalf("read after the mount was detached: %q, %v", b, err)
	}
	if err := d.Write("crl-state.json", []byte("new"), 0o600); !errors.Is(err, ErrChanged) {
		t.Fatalf("write after the mount was detached: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(path, "crl-state.json")); string(b) != "forged" {
		t.Fatalf("the directory below the mount was written: %q", b)
	}
}

// Within the directory too, nothing is followed or blocked on: a link or
// a FIFO at a state file's name is refused, and the heartbeat is created
// exclusively, never through a link.
func TestSpecialFilesAreRefused(t *testing.T) {
	path := t.TempDir()
	elsewhere := t.TempDir()
	d := open(t, path)
	victim := filepath.Join(elsewhere, "victim")
	if err := os.WriteFile(victim, []byte("victim"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(path, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(path, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "missing"), filepath.Join(path, "dangling")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"link", "fifo"} {
		done := make(chan error, 1)
		go func() { _, err := d.ReadFile(name, 1024); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s was read", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("reading %s blocked", name)
		}
	}
	// The link exists, so the heartbeat's Chtimes acts on the link itself
	// and nothing is created through it.
	d.Touch("dangling", time.Now(), []byte("x"))
	if _, err := os.Stat(filepath.Join(elsewhere, "missing")); !os.IsNotExist(err) {
		t.Errorf("touching a dangling link created its target: %v", err)
	}
	if err := d.Write("link", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "victim" {
		t.Errorf("writing over a link wrote its target: %q", b)
	}
}
