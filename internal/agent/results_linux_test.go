package agent

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestResultLogLeavesNoFragmentOnAFullDisk fills a tiny tmpfs so that an
// append must be cut short (the file's last page has a few bytes free, no
// page is left for the rest), then frees space: the next entry must start
// on a line of its own, and every line must parse.
func TestResultLogLeavesNoFragmentOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs (these tests run as root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })

	// results.jsonl ends 16 bytes short of a page boundary.
	first := ResultEntry{Time: time.Unix(0, 0).UTC(), Runner: "ookla", Error: string(bytes.Repeat([]byte("x"), 3800))}
	line := mustLine(t, first)
	pad := 4096 - 16 - len(line)
	first.Error += string(bytes.Repeat([]byte("y"), pad))
	l, err := openResultLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.append(first); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(l.path); st.Size() != 4096-16 {
		t.Fatalf("setup: results.jsonl is %d bytes", st.Size())
	}
	// Take every remaining page.
	ballast := filepath.Join(dir, "ballast")
	f, _ := os.Create(ballast)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()

	if err := l.append(ResultEntry{Time: time.Unix(1, 0).UTC(), Runner: "ndt7", Error: "needs more than 16 bytes"}); err == nil {
		t.Fatal("append on a full disk succeeded")
	}
	os.Remove(ballast)
	if err := l.append(ResultEntry{Time: time.Unix(2, 0).UTC(), Runner: "ndt7"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(l.path)
	lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
	f2, _ := os.Open(l.path)
	entries, _ := ReadResults(f2)
	f2.Close()
	if len(lines) != 2 || len(entries) != 2 || entries[1].Time.Unix() != 2 {
		t.Fatalf("after a full disk: %d lines, %d readable entries; want 2 and 2", len(lines), len(entries))
	}
}

func mustLine(t *testing.T, e ResultEntry) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
