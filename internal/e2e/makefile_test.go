package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMakefileStampsBuildsWithoutGitHistory: a source tree without git
// history (an archive, a copy) still stamps the images and binaries with a
// creation time and a revision; an empty org.opencontainers.image.created
// is what a `git log | sed || date` fallback produced, since a pipeline's
// status is its last command's. `make -n` prints the commands without
// building anything.
func TestMakefileStampsBuildsWithoutGitHistory(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Makefile"), readFile(t, filepath.Join(root, "Makefile")))
	cmd := exec.Command("make", "-n", "images")
	cmd.Dir = dir
	// No repository above the directory either, and none of the stamps
	// given from outside.
	cmd.Env = append(cmd.Env, "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "DATE" && name != "COMMIT" && name != "VERSION" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n images: %v\n%s", err, out)
	}
	args := map[string]string{}
	for _, m := range regexp.MustCompile(`--build-arg (VERSION|REVISION|CREATED)=(\S*)`).FindAllStringSubmatch(string(out), -1) {
		args[m[1]] = m[2]
	}
	if _, err := time.Parse(time.RFC3339, args["CREATED"]); err != nil {
		t.Errorf("CREATED=%q outside git, want an RFC 3339 time: %v\n%s", args["CREATED"], err, out)
	}
	if args["REVISION"] != "unknown" || args["VERSION"] != "0.0.0-dev.gunknown" {
		t.Errorf("REVISION=%q VERSION=%q outside git, want unknown and 0.0.0-dev.gunknown", args["REVISION"], args["VERSION"])
	}
	if !regexp.MustCompile(`buildinfo\.Date=\d{4}-\d\d-\d\dT`).Match(out) {
		t.Errorf("the binaries are not stamped with a date:\n%s", out)
	}
}
