package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesAndKeepsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "identity.json")
	for _, content := range []string{"first", "second, longer content"} {
		if err := Write(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Fatalf("content = %q, want %q", got, content)
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries after writes, want only the file", len(entries))
	}
}

func TestJSONRoundTripAndMissing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.json")
	type doc struct{ A string }
	if err := WriteJSON(p, doc{"b"}, 0o644); err != nil {
		t.Fatal(err)
	}
	var got doc
	if err := ReadJSON(p, &got); err != nil || got.A != "b" {
		t.Fatalf("ReadJSON = %+v, %v", got, err)
	}
	if err := ReadJSON(filepath.Join(dir, "none.json"), &got); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file error = %v, want fs.ErrNotExist", err)
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := Remove(p); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
}

func TestCleanTempRemovesOnlyLeftovers(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, TempPrefix+"a-123"), []byte("torn"), 0o600)
	os.WriteFile(filepath.Join(dir, "keep"), []byte("ok"), 0o600)
	n, err := CleanTemp(dir)
	if err != nil || n != 1 {
		t.Fatalf("CleanTemp = %d, %v; want 1 removed", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Fatalf("CleanTemp removed a real file: %v", err)
	}
}

func TestWriteFailsInMissingDirectory(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "no", "such", "f"), []byte("x"), 0o600)
	if err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

func TestMoveAside(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	to, err := MoveAside(p, ".rejected-1")
	if err != nil || to != p+".rejected-1" {
		t.Fatalf("MoveAside = %q, %v", to, err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the file is still in place: %v", err)
	}
	if b, err := os.ReadFile(to); err != nil || string(b) != "x" {
		t.Errorf("moved file = %q, %v", b, err)
	}
	if to, err := MoveAside(p, ".rejected-2"); err != nil || to != "" {
		t.Errorf("MoveAside of a missing file = %q, %v; want \"\", nil", to, err)
	}
}

// WriteFunc streams the new content; a write that fails halfway leaves the
// old file whole and no temp file behind.
func TestWriteFuncLeavesTheOldFileOnFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "results.jsonl")
	if err := WriteFunc(p, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, "old\n")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFunc(p, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half of the new")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteFunc = %v, want the writer's error", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old\n" {
		t.Fatalf("content after a failed write = %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(entries))
	}
}
