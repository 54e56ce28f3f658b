package netcheck

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/network-requirements.md from the code")

const docPath = "../../docs/network-requirements.md"

// The document network administrators read must be the table the code
// checks: regenerate it whenever a row changes.
func TestGeneratedDocIsCurrent(t *testing.T) {
	var want bytes.Buffer
	if err := WriteDefaultDoc(&want); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(docPath, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v\nGenerate it: go generate ./internal/netcheck", err)
	}
	if bytes.Equal(got, want.Bytes()) {
		return
	}
	fresh := filepath.Join(t.TempDir(), "network-requirements.md")
	os.WriteFile(fresh, want.Bytes(), 0o644)
	diff, _ := exec.Command("diff", "-u", "--label", "docs/network-requirements.md (committed)", "--label", "generated from the code", docPath, fresh).CombinedOutput()
	t.Fatalf("docs/network-requirements.md is out of date with internal/netcheck:\n%s\nRegenerate it: go generate ./internal/netcheck  (or: go test ./internal/netcheck -run TestGeneratedDocIsCurrent -update)", diff)
}
