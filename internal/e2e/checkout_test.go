package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/proctest"
)

// moduleRoot is the checkout under test.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// checkout clones the checkout at root into a fresh directory named name
// (compose takes a project's name from its directory) and applies the
// working tree's uncommitted changes to tracked files, so a developer tests
// what they are about to commit. Untracked files are left out on purpose:
// a file the build needs but git does not track must fail here, as it would
// on CI's fresh clone. Each test builds in its own checkout, so neither the
// tests nor the people sharing the checkout write into each other's dist/
// or .pki/.
func checkout(t *testing.T, root, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	run(t, root, nil, "git", "clone", "--quiet", "--no-hardlinks", root, dir)
	diff := exec.Command("git", "diff", "--binary", "HEAD")
	diff.Dir = root
	patch, err := diff.Output()
	if err != nil {
		t.Fatalf("git diff HEAD in %s: %v", root, err)
	}
	if len(patch) > 0 {
		apply := exec.Command("git", "apply", "--whitespace=nowarn", "-")
		apply.Dir = dir
		apply.Stdin = strings.NewReader(string(patch))
		if out, err := apply.CombinedOutput(); err != nil {
			t.Fatalf("applying the working tree's changes to the clone: %v\n%s", err, out)
		}
	}
	return dir
}

// readFile returns a file's content, failing the test if it cannot.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
