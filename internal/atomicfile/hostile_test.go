package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A write replaces whatever was planted at the name — a link (live or
// dangling), a FIFO, a socket, a huge sparse file — with the new regular
// file: the temporary file is created exclusively under a fresh name and
// renamed over the name, so nothing is followed, opened or blocked on,
// and a link's target stays as it was. A directory at the name makes the
// write fail and is left alone. Both through a path (Write) and through a
// directory held open (WriteIn).
func TestWriteReplacesPlantedFiles(t *testing.T) {
	plants := map[string]func(t *testing.T, path, victim string){
		"live symlink":     func(t *testing.T, path, victim string) { check(t, os.Symlink(victim, path)) },
		"dangling symlink": func(t *testing.T, path, victim string) { check(t, os.Symlink(victim+".missing", path)) },
		"FIFO":             func(t *testing.T, path, _ string) { check(t, syscall.Mkfifo(path, 0o644)) },
		"unix socket": func(t *testing.T, path, _ string) {
			fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			check(t, err)
			check(t, syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}))
			syscall.Close(fd)
		},
		"1 GiB sparse file": func(t *testing.T, path, _ string) {
			f, err := os.Create(path)
			check(t, err)
			check(t, f.Truncate(1<<30))
			check(t, f.Close())
		},
		"directory": func(t *testing.T, path, _ string) { check(t, os.Mkdir(path, 0o755)) },
	}
	writers := map[string]func(dir, name string, data []byte) error{
		"Write": func(dir, name string, data []byte) error { return Write(filepath.Join(dir, name), data, 0o644) },
		"WriteIn": func(dir, name string, data []byte) error {
			root, err := os.OpenRoot(dir)
			if err != nil {
				return err
			}
			defer root.Close()
			return WriteIn(root, name, data, 0o644)
		},
	}
	for wname, write := range writers {
		for pname, plant := range plants {
			t.Run(wname+"/"+pname, func(t *testing.T) {
				dir, elsewhere := t.TempDir(), t.TempDir()
				victim := filepath.Join(elsewhere, "victim")
				check(t, os.WriteFile(victim, []byte("victim"), 0o600))
				path := filepath.Join(dir, "update-status.json")
				plant(t, path, victim)
				err := write(dir, "update-status.json", []byte("new"))
				if b, _ := os.ReadFile(victim); string(b) != "victim" {
					t.Fatalf("the link's target was written: %q", b)
				}
				if _, err := os.Lstat(victim + ".missing"); !os.IsNotExist(err) {
					t.Fatalf("the dangling link's target was created")
				}
				st, lerr := os.Lstat(path)
				if pname == "directory" {
					if err == nil || lerr != nil || !st.IsDir() {
						t.Fatalf("over a directory: err %v, now %v", err, st.Mode())
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					if b, _ := os.ReadFile(path); !st.Mode().IsRegular() || string(b) != "new" {
						t.Fatalf("after the write: %v %q", st.Mode(), b)
					}
				}
				entries, _ := os.ReadDir(dir)
				if len(entries) != 1 {
					t.Errorf("%d entries left, want 1", len(entries))
				}
			})
		}
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
