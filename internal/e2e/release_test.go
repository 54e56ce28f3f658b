package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/tlstest"
)

// releasePlatform is one of the release's platforms: the Ookla CLI's name
// for it, the image tag suffix `make images-multiarch` loads it under, and
// the ELF machine its binaries must be built for.
type releasePlatform struct {
	platform, ooklaArch, suffix string
	machine                     elf.Machine
}

// releasePlatforms are the release's platforms.
var releasePlatforms = []releasePlatform{
	{"linux/amd64", "x86_64", "linux-amd64", elf.EM_X86_64},
	{"linux/arm64", "aarch64", "linux-arm64", elf.EM_AARCH64},
	{"linux/arm/v7", "armhf", "linux-arm-v7", elf.EM_ARM},
}

const (
	releaseVersion = "9.8.7"
	sourceURL      = "https://github.com/radarpod/radarpod"
	ooklaVersion   = "1.2.0"
)

// TestReleaseWorkflowBuildsTheImages runs the release workflow's images
// job on this machine, step by step as a runner would (the version and
// `latest` decision, the release root, the Ookla CLI, the multi-arch
// build), then opens every image it built, and installs a pod from this
// machine's platform's images as a pod installs published ones. Every path
// the job hands to the Docker build must be in the build context
// .dockerignore admits, or the build fails here instead of on a release
// tag. Stood in for: the actions (checkout is the test's clone, Go is this
// machine's, and so is BuildKit: buildx where the docker CLI has the
// plugin, else the BuildKit built into Debian's docker CLI), curl (the
// Ookla archives are the test's), the push (no registry login and no
// docker-container builder here: each platform is loaded into the local
// engine instead, from the same context with the same arguments), and the
// signing step, which needs the release secrets (TestComposeStackEndToEnd
// signs with radar-sign against a real registry).
func TestReleaseWorkflowBuildsTheImages(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	eng := dockertest.New(t)
	src := checkout(t, root, "radarpod")
	buildKit := buildKitBuilder(t)
	t.Logf("building with %s", buildKit.name)

	// Tags under the test's control: the release being built, an older
	// release and a newer pre-release.
	for _, tag := range strings.Fields(run(t, src, nil, "git", "tag", "--list")) {
		run(t, src, nil, "git", "tag", "--delete", tag)
	}
	for _, tag := range []string{"v9.8.6", "v" + releaseVersion, "v9.8.8-rc.1"} {
		run(t, src, nil, "git", "tag", tag)
	}

	// The release root, checked in by the release process at the path the
	// workflow expects (deploy/pki/README.md).
	ca, err := tlstest.NewCA("Radar Pod stand-in release root")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "deploy", "pki", "root-ca.pem"), string(ca.PEM))

	standin := t.TempDir()
	exprs := map[string]string{
		"github.repository_owner": eng.Prefix,
		"vars.OOKLA_CLI_VERSION":  ooklaVersion,
	}
	ooklaBinary := map[string]string{}
	for _, p := range releasePlatforms {
		ooklaBinary[p.platform] = "#!/bin/false\n# stand-in Ookla CLI for " + p.platform + "\n"
		sum := writeOoklaArchive(t, filepath.Join(standin, "archives", "ookla-speedtest-"+ooklaVersion+"-linux-"+p.ooklaArch+".tgz"), ooklaBinary[p.platform])
		exprs["vars.OOKLA_CLI_SHA256_"+strings.ToUpper(p.ooklaArch)] = sum
	}
	bin := filepath.Join(standin, "bin")
	writeExecutable(t, filepath.Join(bin, "curl"), curlStandIn)
	writeExecutable(t, filepath.Join(bin, "make"), makeStandIn)
	realMake, err := exec.LookPath("make")
	if err != nil {
		t.Fatal(err)
	}

	wf := loadWorkflow(t, filepath.Join(src, ".github", "workflows", "release.yml"))
	job, ok := wf.Jobs["images"]
	if !ok {
		t.Fatal("release.yml has no images job")
	}
	build := job.stepIndex(t, "make images-multiarch")
	if !strings.Contains(job.Steps[build].Run, "PUSH=1") {
		t.Fatalf("the release build step does not push: %q", job.Steps[build].Run)
	}
	newRunner := func(ref string) *jobRunner {
		return newJobRunner(t, src, job, exprs, append(slices.Clone(buildKit.env), "PATH="+bin+string(os.PathListSeparator)+buildKit.path, "REAL_MAKE="+realMake,
			"STANDIN_DIR="+standin, "GITHUB_REF_NAME="+ref, "GITHUB_REF=refs/tags/"+ref)...)
	}

	agentRepo, updaterRepo := "ghcr.io/"+eng.Prefix+"/radar-agent", "ghcr.io/"+eng.Prefix+"/radar-updater"
	t.Cleanup(func() { removeImages(t, agentRepo, updaterRepo) })
	r := newRunner("v" + releaseVersion)
	// Every run: step up to the build runs; step conditions are not
	// evaluated (the one there, an Ookla CLI version being set, holds with
	// the stand-ins).
	for i, st := range job.Steps[:build+1] {
		if st.Uses != "" {
			continue // the actions: see above
		}
		if out := r.run(st); i == build && !strings.Contains(out, buildKit.mark) {
			t.Fatalf("the build did not go through %s (no %q):\n%s", buildKit.name, buildKit.mark, out)
		}
	}

	// `latest` moves for the newest stable release only.
	if got := r.exported(); got["VERSION"] != releaseVersion || got["LATEST"] != "1" {
		t.Errorf("release v%s: VERSION=%q LATEST=%q, want %s and 1", releaseVersion, got["VERSION"], got["LATEST"], releaseVersion)
	}
	versionStep := job.Steps[job.stepIndex(t, "GITHUB_REF_NAME")]
	for ref, want := range map[string]string{"v9.8.8-rc.1": "0", "v9.8.6": "0"} {
		r := newRunner(ref)
		r.run(versionStep)
		if got := r.exported()["LATEST"]; got != want {
			t.Errorf("release %s: LATEST=%q, want %s", ref, got, want)
		}
	}
	var fetched []string
	for _, p := range releasePlatforms {
		fetched = append(fetched, "https://install.speedtest.net/app/cli/ookla-speedtest-"+ooklaVersion+"-linux-"+p.ooklaArch+".tgz")
	}
	if got := strings.Fields(readFile(t, filepath.Join(standin, "curl.log"))); !slices.Equal(got, fetched) {
		t.Errorf("the Ookla step fetched %v, want %v", got, fetched)
	}

	commit := strings.TrimSpace(run(t, src, nil, "git", "rev-parse", "--short=12", "HEAD"))
	created := strings.TrimSpace(run(t, src, []string{"TZ=UTC0"}, "git", "log", "-1", "--date=format-local:%Y-%m-%dT%H:%M:%SZ", "--format=%cd"))
	for _, p := range releasePlatforms {
		for repo, name := range map[string]string{agentRepo: "radar-agent", updaterRepo: "radar-updater"} {
			ref := repo + ":" + releaseVersion + "-" + p.suffix
			img := inspectImage(t, ref)
			if got := img.Os + "/" + img.Architecture; !strings.HasPrefix(p.platform, got) {
				t.Errorf("%s is for %s, want %s", ref, got, p.platform)
			}
			checkLabels(t, ref, img.Config.Labels, map[string]string{
				"org.opencontainers.image.version":  releaseVersion,
				"org.opencontainers.image.title":    name,
				"org.opencontainers.image.revision": commit,
				"org.opencontainers.image.created":  created,
				"org.opencontainers.image.source":   sourceURL,
			})
			if err := numericNonRoot(img.Config.User); err != nil {
				t.Errorf("%s: %v", ref, err)
			}
			paths := []string{"/" + name}
			if name == "radar-agent" {
				paths = append(paths, "/usr/local/bin/speedtest")
			} else {
				paths = append(paths, "/etc/radar/root-ca.pem")
			}
			files := imageFiles(t, eng, ref, p.platform, paths...)
			f, err := elf.NewFile(bytes.NewReader(files["/"+name]))
			if err != nil {
				t.Fatalf("%s: /%s is not an ELF binary: %v", ref, name, err)
			}
			if f.Machine != p.machine {
				t.Errorf("%s holds a %v binary, want %v", ref, f.Machine, p.machine)
			}
			if name == "radar-agent" && string(files["/usr/local/bin/speedtest"]) != ooklaBinary[p.platform] {
				t.Errorf("%s: /usr/local/bin/speedtest is %q, want the Ookla CLI for %s", ref, files["/usr/local/bin/speedtest"], p.platform)
			}
			if name == "radar-updater" && string(files["/etc/radar/root-ca.pem"]) != string(ca.PEM) {
				t.Errorf("%s does not pin the release root", ref)
			}
		}
	}

	// This machine's platform's images run.
	host := slices.IndexFunc(releasePlatforms, func(p releasePlatform) bool { return p.machine == hostMachine() })
	if host < 0 {
		t.Fatalf("no release platform for this machine (%s)", runtime.GOARCH)
	}
	hostTag := releaseVersion + "-" + releasePlatforms[host].suffix
	t.Run("network commands in the agent image", func(t *testing.T) {
		checkNetworkCommands(t, eng, agentRepo+":"+hostTag)
	})
	t.Run("pod install from the published images", func(t *testing.T) {
		testPodInstall(t, eng, src, agentRepo+":"+hostTag, updaterRepo+":"+hostTag)
	})
}

// checkNetworkCommands runs `network-requirements` and `check-network` in
// the agent image, as an installer would with `docker run`, locked down as
// compose runs the agent. --network none: the loopback the configuration
// points at holds no server (connection refused), and a public name cannot
// even be resolved, so every required row fails, each with its hint.
func checkNetworkCommands(t *testing.T, eng *dockertest.Engine, ref string) {
	env := []string{
		"RADAR_SERVER_URL=https://127.0.0.1:1", "RADAR_TESTS=ndt7", "RADAR_NDT7_SERVER=127.0.0.1:1",
		"RADAR_AGENT_IMAGE=127.0.0.1:1/radarpod/radar-agent",
		// RADAR_CRL_URL keeps its default: storage.googleapis.com, a DNS failure here.
	}
	dockerRun := func(args ...string) (int, string, string) {
		full := []string{"run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
			"--security-opt", "no-new-privileges:true", "--label", dockertest.TestLabel + "=" + eng.Prefix}
		for _, kv := range env {
			full = append(full, "-e", kv)
		}
		full = append(append(full, ref), args...)
		cmd := exec.Command("docker", full...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("docker %s: %v", strings.Join(full, " "), err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}

	code, out, stderr := dockerRun("network-requirements", "--format", "json")
	if code != netcheck.ExitOK {
		t.Fatalf("network-requirements --format json: exit %d\n%s%s", code, out, stderr)
	}
	var reqs []map[string]any
	if err := json.Unmarshal([]byte(out), &reqs); err != nil {
		t.Fatalf("network-requirements --format json is not a JSON array: %v\n%s", err, out)
	}
	var reqIDs []string
	for _, r := range reqs {
		for _, field := range []string{"id", "service", "why", "protocol", "ports", "tls", "who", "required"} {
			if _, ok := r[field]; !ok {
				t.Errorf("requirement %v lacks %q", r["id"], field)
			}
		}
		id, _ := r["id"].(string)
		reqIDs = append(reqIDs, id)
	}
	for _, id := range []string{netcheck.RowPods, netcheck.RowNDT7, netcheck.RowCRL, netcheck.RowRegistry} {
		if !slices.Contains(reqIDs, id) {
			t.Errorf("network-requirements rows %v lack %s", reqIDs, id)
		}
	}
	if code, out, _ := dockerRun("network-requirements"); code != netcheck.ExitOK || !strings.HasPrefix(out, "# Network access requirements") {
		t.Errorf("network-requirements (Markdown): exit %d\n%s", code, out)
	}

	code, out, stderr = dockerRun("check-network", "--format", "json", "--timeout", "30s")
	if code != netcheck.ExitFailed {
		t.Fatalf("check-network with nothing reachable: exit %d, want %d\n%s%s", code, netcheck.ExitFailed, out, stderr)
	}
	var report struct {
		Rows []struct {
			ID       string `json:"id"`
			Required bool   `json:"required"`
			Verdict  string `json:"verdict"`
			Step     string `json:"failed_step"`
			Hint     string `json:"hint"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("check-network --format json is not a report: %v\n%s", err, out)
	}
	var checked []string
	for _, row := range report.Rows {
		checked = append(checked, row.ID)
		if row.Required && (row.Verdict != string(netcheck.Fail) || row.Step == "" || row.Hint == "") {
			t.Errorf("row %s: verdict %q at %q, hint %q; want a failure with its step and hint", row.ID, row.Verdict, row.Step, row.Hint)
		}
		switch row.ID {
		case netcheck.RowPods:
			if row.Step != netcheck.StepTCP || !strings.Contains(row.Hint, "connection refused on port 1") {
				t.Errorf("pods: %q: %q, want the refused connection", row.Step, row.Hint)
			}
		case netcheck.RowCRL:
			if row.Step != netcheck.StepDNS || !strings.HasPrefix(row.Hint, "DNS failed") {
				t.Errorf("crl: %q: %q, want the DNS failure", row.Step, row.Hint)
			}
		}
	}
	if !slices.Equal(checked, reqIDs) {
		t.Errorf("check-network checked %v, network-requirements lists %v", checked, reqIDs)
	}

	code, out, _ = dockerRun("check-network", "--timeout", "30s")
	if code != netcheck.ExitFailed || !strings.Contains(out, "FAIL: ") || !strings.Contains(out, "connection refused on port 1") {
		t.Errorf("check-network (table): exit %d, want %d with the failing rows and their hints:\n%s", code, netcheck.ExitFailed, out)
	}
}

// hostMachine is the ELF machine of this machine's binaries.
func hostMachine() elf.Machine {
	return map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}[runtime.GOARCH]
}

// writeOoklaArchive writes a .tgz shaped like Ookla's (the CLI at its top
// level) and returns its SHA-256.
func writeOoklaArchive(t *testing.T, path, binary string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "speedtest", Mode: 0o755, Size: int64(len(binary)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tw, binary)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

func writeExecutable(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// curlStandIn serves the release job's downloads from $STANDIN_DIR (this
// machine reaches no download site) and logs what was asked for.
const curlStandIn = `#!/bin/bash
set -eu
out= url=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift ;;
	-*) ;;
	*) url=$1 ;;
	esac
	shift
done
printf '%s\n' "$url" >> "$STANDIN_DIR/curl.log"
cp "$STANDIN_DIR/archives/${url##*/}" "$out"
`

// makeStandIn runs the release build step's make with PUSH=1 turned off:
// pushing one multi-arch index needs a docker-container buildx builder (an
// image this machine cannot pull) and a registry login. Without PUSH, make
// builds each platform with the BuildKit it finds (buildx, or the one built
// into a docker CLI before 23). Everything else on the command line, the
// context and the build arguments among it, is the workflow's own.
const makeStandIn = `#!/bin/bash
args=()
for a in "$@"; do
	[ "$a" = PUSH=1 ] && a=PUSH=
	args+=("$a")
done
exec "$REAL_MAKE" "${args[@]}"
`

// imageInfo is what the tests read of `docker image inspect`.
type imageInfo struct {
	Os, Architecture, Variant string
	Config                    struct {
		User   string
		Labels map[string]string
	}
}

func inspectImage(t *testing.T, ref string) imageInfo {
	t.Helper()
	var imgs []imageInfo
	if err := json.Unmarshal([]byte(run(t, "", nil, "docker", "image", "inspect", ref)), &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("docker image inspect %s: %v", ref, err)
	}
	return imgs[0]
}

func checkLabels(t *testing.T, ref string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: label %s = %q, want %q", ref, k, got[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339, got["org.opencontainers.image.created"]); err != nil {
		t.Errorf("%s: label org.opencontainers.image.created is not RFC 3339: %v", ref, err)
	}
}

// imageFiles copies files out of an image (a container is created, never
// started: scratch images have no shell to cat with); platform "" is the
// engine's own.
func imageFiles(t *testing.T, eng *dockertest.Engine, ref, platform string, paths ...string) map[string][]byte {
	t.Helper()
	args := []string{"create", "--label", dockertest.TestLabel + "=" + eng.Prefix}
	if platform != "" {
		args = append(args, "--platform", platform)
	}
	id := strings.TrimSpace(run(t, "", nil, "docker", append(args, ref)...))
	defer exec.Command("docker", "rm", "-f", "-v", id).Run() // -v: the agent image declares a volume
	files := map[string][]byte{}
	for _, p := range paths {
		out, err := exec.Command("docker", "cp", id+":"+p, "-").Output()
		if err != nil {
			t.Fatalf("%s: docker cp %s: %v", ref, p, err)
		}
		tr := tar.NewReader(bytes.NewReader(out))
		h, err := tr.Next()
		if err != nil || h.Typeflag != tar.TypeReg {
			t.Fatalf("%s: %s is not a regular file (%v)", ref, p, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	return files
}
