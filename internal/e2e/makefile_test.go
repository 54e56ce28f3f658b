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

// TestMakeUpWarnsAboutSettingsNoContainerGets: compose hands each container
// only the variables docker-compose.yml lists for it, so a typo in .env
// would reach nothing, in silence. `make up` runs env-check, which names
// each such setting; every setting .env.example documents (commented out
// there) is one compose uses, so with all of them set only the typo is
// named.
func TestMakeUpWarnsAboutSettingsNoContainerGets(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"Makefile", "docker-compose.yml"} {
		writeFile(t, filepath.Join(dir, f), readFile(t, filepath.Join(root, f)))
	}
	var dotenv strings.Builder
	documented := 0
	for _, m := range regexp.MustCompile(`(?m)^#([A-Z][A-Z0-9_]*)=(.*)$`).FindAllStringSubmatch(readFile(t, filepath.Join(root, ".env.example")), -1) {
		dotenv.WriteString(m[1] + "=" + m[2] + "\n")
		documented++
	}
	if documented < 30 {
		t.Fatalf(".env.example documents %d settings; the pattern no longer finds them", documented)
	}
	dotenv.WriteString("# a comment\nRADAR_TSETS=ookla\n")
	writeFile(t, filepath.Join(dir, ".env"), dotenv.String())
	if plan := run(t, dir, nil, "make", "-n", "up"); !strings.Contains(plan, "docker-compose.yml gives it to no container") {
		t.Fatalf("make up does not run the check:\n%s", plan)
	}
	out := run(t, dir, []string{"GIT_CEILING_DIRECTORIES=" + filepath.Dir(dir)}, "make", "--no-print-directory", "env-check")
	want := "warning: RADAR_TSETS is set in .env, but docker-compose.yml gives it to no container (a typo?): it is ignored\n"
	if out != want {
		t.Errorf("make env-check printed\n%s\nwant only\n%s", out, want)
	}
}
