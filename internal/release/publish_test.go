package release_test

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/release/releasetest"
)

// TestMain makes the loopback CRL servers' certificate (every httptest TLS
// server has the same one) the system roots, as GCS's is in CI, so that
// `check-crl URL` is tested over real HTTPS the way the workflow runs it.
// It must happen before anything loads the system pool.
func TestMain(m *testing.M) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	roots := filepath.Join(os.TempDir(), fmt.Sprintf("radar-release-test-roots-%d.pem", os.Getpid()))
	err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	srv.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("SSL_CERT_FILE", roots)
	code := m.Run()
	os.Remove(roots)
	os.Exit(code)
}

// publishChecks reads what the CRL workflow's publish job requires and what
// the runbook tells the operator to issue, so that the two cannot drift
// apart again: a CRL made per the runbook must pass the publish check.
func publishChecks(t *testing.T) (nextUpdate, minValidity time.Duration, workflow string) {
	t.Helper()
	readme, err := os.ReadFile("../../deploy/pki/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^radar-sign crl --dir pki --next-update (\S+)`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("deploy/pki/README.md: no `radar-sign crl --dir pki --next-update DUR` line for the scheduled re-issue")
	}
	if nextUpdate, err = time.ParseDuration(string(m[1])); err != nil {
		t.Fatal(err)
	}
	wf, err := os.ReadFile("../../.github/workflows/crl.yml")
	if err != nil {
		t.Fatal(err)
	}
	workflow = string(wf)
	start, end := strings.Index(workflow, "\n  publish:"), strings.Index(workflow, "\n  watch:")
	if start < 0 || end < start {
		t.Fatal("crl.yml: no publish job before the watch job")
	}
	publish := workflow[start:end]
	for _, v := range regexp.MustCompile(`--min-validity (\S+)`).FindAllStringSubmatch(publish, -1) {
		d, err := time.ParseDuration(v[1])
		if err != nil {
			t.Fatal(err)
		}
		minValidity = max(minValidity, d)
	}
	if minValidity == 0 {
		t.Fatal("crl.yml: the publish job checks no --min-validity")
	}
	return nextUpdate, minValidity, publish
}

// The runbook's CRL passes the workflow's publish check with a day to
// spare between signing it offline and the push that publishes it, and the
// very first publish (nothing at the URL yet: 404) is accepted, explicitly,
// while any other failure to read the published CRL still stops it.
func TestRunbookCRLPassesThePublishCheck(t *testing.T) {
	nextUpdate, minValidity, publish := publishChecks(t)
	if nextUpdate-minValidity < 24*time.Hour {
		t.Fatalf("the runbook issues CRLs for %s but publishing requires %s left: less than a day to get it published", nextUpdate, minValidity)
	}
	if !strings.Contains(publish, "--allow-unpublished") {
		t.Error("the publish job's --newer-than check does not allow the first publish")
	}

	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	mustRun(t, "init-ca", "--dir", pki)
	root := filepath.Join(pki, "root-ca.pem")
	first, second := filepath.Join(dir, "first.pem"), filepath.Join(dir, "second.pem")
	mustRun(t, "crl", "--dir", pki, "--next-update", nextUpdate.String(), "--out", first)
	mustRun(t, "crl", "--dir", pki, "--next-update", nextUpdate.String(), "--out", second)
	host := releasetest.StartCRLServer(t) // 404 until something is published
	check := func(crl string, extra ...string) (int, string) {
		args := append([]string{"check-crl", "--root", root, "--min-validity", minValidity.String(), "--newer-than", host.URL()}, extra...)
		code, out, errOut := run(t, append(args, crl)...)
		return code, out + errOut
	}

	if code, out := check(first, "--allow-unpublished"); code != 0 || !strings.Contains(out, "first publish") {
		t.Fatalf("first publish: exit %d\n%s", code, out)
	}
	if code, out := check(first); code != 1 || !strings.Contains(out, "404") {
		t.Errorf("first publish without --allow-unpublished: exit %d\n%s", code, out)
	}
	// Once something is published, the number must grow.
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	host.Serve(b)
	if code, out := check(second, "--allow-unpublished"); code != 0 || !strings.Contains(out, "CRL number 2") {
		t.Errorf("second publish: exit %d\n%s", code, out)
	}
	if code, out := check(first, "--allow-unpublished"); code != 1 || !strings.Contains(out, "replay") {
		t.Errorf("republishing the same number: exit %d\n%s", code, out)
	}
	// A bucket that fails otherwise is not "nothing published".
	host.Fail(http.StatusForbidden)
	if code, out := check(second, "--allow-unpublished"); code != 1 || !strings.Contains(out, "403") {
		t.Errorf("published CRL unreadable (403): exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "check-crl", "--root", root, "--allow-unpublished", second); code != 2 || !strings.Contains(errOut, "--allow-unpublished") {
		t.Errorf("--allow-unpublished without --newer-than URL: exit %d, %q", code, errOut)
	}
}
