package agent_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// TestRedactorLearnsEveryFormOfTheIdentity: as soon as the pod has an
// identity — from registration, or from the identity file on a later
// start — the redactor hides the secret and the ClientToken credential
// (base64 of "unix_user:secret", which does not contain the secret) in
// whatever is logged or sent to Sentry.
func TestRedactorLearnsEveryFormOfTheIdentity(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	var registered radar.Identity
	for _, tc := range []struct{ start, logged string }{
		{"registration", "pod registered"},
		{"identity file", "pod identity loaded"},
	} {
		t.Run(tc.start, func(t *testing.T) {
			// A data dir of its own: an agent in this process keeps its
			// outbox locked until the process ends.
			dir := t.TempDir()
			if registered.Valid() {
				if err := radar.SaveIdentity(dir, registered); err != nil {
					t.Fatal(err)
				}
			}
			r := &telemetry.Redactor{}
			p := startPod(t, podOptions{
				env:      map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": dir, "RADAR_TESTS": "ookla", "RADAR_OOKLA_BIN": "/nonexistent/speedtest"},
				redactor: r,
			})
			waitFor(t, tc.logged, func() bool { return strings.Contains(p.logs.String(), `"msg":"`+tc.logged+`"`) })
			p.stop()
			id, ok, err := radar.LoadIdentity(dir)
			if !ok || err != nil {
				t.Fatalf("no identity: %v", err)
			}
			registered = id
			cred := base64.StdEncoding.EncodeToString([]byte(id.UnixUser + ":" + id.Secret))
			for _, line := range []string{
				"Authorization: ClientToken " + cred,
				"Authorization: ClientToken " + strings.TrimRight(cred, "="),
				"client_secret=" + id.Secret,
			} {
				got := r.String(line)
				if strings.Contains(got, id.Secret) || strings.Contains(got, strings.TrimRight(cred, "=")) || !strings.Contains(got, telemetry.Redacted) {
					t.Errorf("%q redacted as %q", line, got)
				}
			}
		})
	}
	if n := len(srv.Registrations()); n != 1 {
		t.Errorf("%d registrations, want 1: the second start did not use the identity file", n)
	}
}
