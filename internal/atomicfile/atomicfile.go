// Package atomicfile owns crash-safe file replacement: a reader sees either
// the old content or the new, never a torn write, even after kill -9 or a
// power cut (write temp, fsync, rename, fsync the directory).
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix marks in-progress writes. Stores that scan a directory skip and
// clean up names with this prefix: they are leftovers of a crash.
const TempPrefix = ".tmp-"

// Write replaces path with data atomically and durably.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc replaces path atomically and durably with what write writes,
// for content too large to build in memory first. If write fails, path is
// left as it was.
//
// The temporary file is created exclusively (O_EXCL) under a fresh random
// name and renamed over path: a symbolic link, FIFO or other special file
// someone planted at path is replaced, never followed or opened.
func WriteFunc(path string, perm fs.FileMode, write func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := writeVia(pathDir(dir), base, perm, write); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteIn is Write for a file in the directory root holds open (see
// WriteFuncIn).
func WriteIn(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	return WriteFuncIn(root, name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFuncIn is WriteFunc for the file name directly inside the directory
// root holds open: every step (create, rename, the directory's fsync) acts
// on that directory, whatever has since been mounted, renamed or linked at
// its path.
func WriteFuncIn(root *os.Root, name string, perm fs.FileMode, write func(io.Writer) error) error {
	if name != filepath.Base(name) || name == "." || name == ".." {
		return fmt.Errorf("write %s: not a plain file name", name)
	}
	if err := writeVia(rootDir{root}, name, perm, write); err != nil {
		return fmt.Errorf("write %s in %s: %w", name, root.Name(), err)
	}
	return nil
}

// WriteJSONIn is WriteJSON for a file in the directory root holds open.
func WriteJSONIn(root *os.Root, name string, v any, perm fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: encode: %w", name, err)
	}
	return WriteIn(root, name, append(b, '\n'), perm)
}

// RemoveIn is Remove for a file in the directory root holds open.
func RemoveIn(root *os.Root, name string) error {
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncRoot(root)
}

// MoveAsideIn is MoveAside for a file in the directory root holds open; it
// returns the new name, or "" when there was no file to move.
func MoveAsideIn(root *os.Root, name, suffix string) (string, error) {
	to := name + suffix
	if err := root.Rename(name, to); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if err := syncRoot(root); err != nil {
		return "", err
	}
	return to, nil
}

// tempDir is where writeVia creates, renames and syncs: a path, or a
// directory held open.
type tempDir interface {
	createTemp(base string) (*os.File, string, error)
	rename(tmp, base string) error
	remove(tmp string) error
	sync() error
}

func writeVia(d tempDir, base string, perm fs.FileMode, write func(io.Writer) error) error {
	f, tmp, err := d.createTemp(base)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			d.remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := d.rename(tmp, base); err != nil {
		return err
	}
	ok = true
	return d.sync()
}

type pathDir string

func (d pathDir) createTemp(base string) (*os.File, string, error) {
	f, err := os.CreateTemp(string(d), TempPrefix+base+"-*")
	if err != nil {
		return nil, "", err
	}
	return f, f.Name(), nil
}

func (d pathDir) rename(tmp, base string) error {
	return os.Rename(tmp, filepath.Join(string(d), base))
}
func (d pathDir) remove(tmp string) error { return os.Remove(tmp) }
func (d pathDir) sync() error             { return SyncDir(string(d)) }

type rootDir struct{ r *os.Root }

func (d rootDir) createTemp(base string) (*os.File, string, error) {
	for range 100 {
		var b [8]byte
		rand.Read(b[:])
		name := TempPrefix + base + "-" + hex.EncodeToString(b[:])
		f, err := d.r.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("create a temporary file for %s: too many collisions", base)
}

func (d rootDir) rename(tmp, base string) error { return d.r.Rename(tmp, base) }
func (d rootDir) remove(tmp string) error       { return d.r.Remove(tmp) }
func (d rootDir) sync() error                   { return syncRoot(d.r) }

// syncRoot makes the entries of the directory root holds durable.
func syncRoot(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", root.Name(), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", root.Name(), err)
	}
	return nil
}

// WriteJSON marshals v (indented, so operators can read it) and writes it atomically.
func WriteJSON(path string, v any, perm fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: encode: %w", path, err)
	}
	return Write(path, append(b, '\n'), perm)
}

// ReadJSON decodes the file at path into v. A missing file is reported as an
// error satisfying errors.Is(err, fs.ErrNotExist).
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// Remove deletes path durably; a missing file is not an error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// MoveAside renames path to path+suffix durably (kept for an operator to
// read, out of the way of whoever reads path) and returns the new name, or
// "" when there was no file to move.
func MoveAside(path, suffix string) (string, error) {
	to := path + suffix
	if err := os.Rename(path, to); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	return to, nil
}

// SyncDir makes a directory's entries (creations, renames, removals) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// CleanTemp removes leftovers of interrupted writes in dir and reports how
// many it removed.
func CleanTemp(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}
