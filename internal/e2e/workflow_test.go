package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// actionsWorkflow is as much of a GitHub Actions workflow file as the
// tests run: jobs, their environment and their steps.
type actionsWorkflow struct {
	Jobs map[string]actionsJob `yaml:"jobs"`
}

type actionsJob struct {
	Env   map[string]string `yaml:"env"`
	Steps []actionsStep     `yaml:"steps"`
}

type actionsStep struct {
	Name string            `yaml:"name"`
	Uses string            `yaml:"uses"`
	Run  string            `yaml:"run"`
	Env  map[string]string `yaml:"env"`
}

func loadWorkflow(t *testing.T, path string) actionsWorkflow {
	t.Helper()
	var wf actionsWorkflow
	if err := yaml.Unmarshal([]byte(readFile(t, path)), &wf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return wf
}

// stepIndex is the index of the first step whose run script contains s.
func (j actionsJob) stepIndex(t *testing.T, s string) int {
	t.Helper()
	for i, st := range j.Steps {
		if strings.Contains(st.Run, s) {
			return i
		}
	}
	t.Fatalf("no step of the job runs %q", s)
	return -1
}

// jobRunner runs a job's `run:` steps as a GitHub-hosted runner does: each
// script by `bash --noprofile --norc -eo pipefail` in the checkout, with
// the job's env, then what earlier steps appended to $GITHUB_ENV, then the
// step's own env. ${{ }} expressions are replaced from exprs; one the test
// has no stand-in for fails it, so a new secret or variable in the
// workflow cannot slip past unexercised.
type jobRunner struct {
	t          *testing.T
	dir        string
	job        actionsJob
	exprs      map[string]string
	base       []string
	githubEnv  string
	runnerTemp string
	steps      int
}

// runnerEnv keeps the variables of this process a runner would have too
// (toolchain, Docker, home, temp); make variables a developer may have
// exported (VERSION, DATE, ROOT_CA, ...) must not leak into the release
// build under test.
var runnerEnv = regexp.MustCompile(`^(PATH|HOME|USER|LANG|LC_[A-Z]+|TMPDIR|GO[A-Z0-9_]*|CGO_[A-Z_]+|DOCKER_[A-Z_]+|SSL_CERT_[A-Z]+)=`)

func newJobRunner(t *testing.T, dir string, job actionsJob, exprs map[string]string, extra ...string) *jobRunner {
	t.Helper()
	temp := t.TempDir()
	r := &jobRunner{t: t, dir: dir, job: job, exprs: exprs, runnerTemp: temp, githubEnv: filepath.Join(temp, "github_env")}
	for _, kv := range os.Environ() {
		if runnerEnv.MatchString(kv) {
			r.base = append(r.base, kv)
		}
	}
	r.base = append(r.base, "CI=true", "GITHUB_ACTIONS=true", "GITHUB_WORKSPACE="+dir,
		"RUNNER_TEMP="+temp, "GITHUB_ENV="+r.githubEnv)
	r.base = append(r.base, extra...)
	if err := os.WriteFile(r.githubEnv, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

var expression = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

func (r *jobRunner) expand(s string) string {
	r.t.Helper()
	return expression.ReplaceAllStringFunc(s, func(m string) string {
		name := expression.FindStringSubmatch(m)[1]
		v, ok := r.exprs[name]
		if !ok {
			r.t.Fatalf("the workflow uses ${{ %s }}, which this test has no stand-in for", name)
		}
		return v
	})
}

// run runs one step and returns its output; a failing step fails the test.
func (r *jobRunner) run(st actionsStep) string {
	r.t.Helper()
	if st.Uses != "" {
		r.t.Fatalf("step %q uses an action (%s); a test can run only run: steps", st.Name, st.Uses)
	}
	r.steps++
	script := filepath.Join(r.runnerTemp, fmt.Sprintf("step-%d.sh", r.steps))
	if err := os.WriteFile(script, []byte(r.expand(st.Run)), 0o644); err != nil {
		r.t.Fatal(err)
	}
	env := append([]string(nil), r.base...)
	for k, v := range r.job.Env {
		env = append(env, k+"="+r.expand(v))
	}
	for k, v := range r.exported() {
		env = append(env, k+"="+v)
	}
	for k, v := range st.Env {
		env = append(env, k+"="+r.expand(v))
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Dir = r.dir
	cmd.Env = env // os/exec keeps the last value of a repeated name
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("release workflow step %q failed: %v\n%s", st.Name, err, out)
	}
	return string(out)
}

// exported is what the steps so far appended to $GITHUB_ENV (NAME=value
// lines and NAME<<DELIMITER blocks).
func (r *jobRunner) exported() map[string]string {
	r.t.Helper()
	f, err := os.Open(r.githubEnv)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if name, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(name, "=") {
			var lines []string
			for sc.Scan() && sc.Text() != delim {
				lines = append(lines, sc.Text())
			}
			vars[name] = strings.Join(lines, "\n")
			continue
		}
		if name, value, ok := strings.Cut(line, "="); ok {
			vars[name] = value
		} else if line != "" {
			r.t.Fatalf("$GITHUB_ENV line %q is neither NAME=value nor NAME<<DELIMITER", line)
		}
	}
	return vars
}
