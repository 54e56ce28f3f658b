package radar_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// TestIdentitySecretsCoverTheClientToken: the HTTP endpoints' credential
// is base64("unix_user:secret"), in which the secret does not appear: a
// redactor that knew only the secret would let an echoed Authorization
// header through.
func TestIdentitySecretsCoverTheClientToken(t *testing.T) {
	id := radar.Identity{UnixUser: "rabc123def45", Secret: "s3cr3tPodKy"}
	token := base64.StdEncoding.EncodeToString([]byte(id.UnixUser + ":" + id.Secret))
	if strings.Contains(token, id.Secret) {
		t.Fatal("test premise: the token contains the secret")
	}
	r := &telemetry.Redactor{}
	r.Add(id.Secrets()...)
	for _, line := range []string{
		"Authorization: ClientToken " + token,
		`{"authorization":"ClientToken ` + strings.TrimRight(token, "=") + `"}`,
		"client_secret=" + id.Secret,
		"Authorization: Basic " + id.UnixUser + ":" + id.Secret,
	} {
		got := r.String(line)
		if strings.Contains(got, id.Secret) || strings.Contains(got, strings.TrimRight(token, "=")) || !strings.Contains(got, telemetry.Redacted) {
			t.Errorf("%q redacted as %q", line, got)
		}
	}
	if (radar.Identity{UnixUser: "r1"}).Secrets() != nil {
		t.Error("an identity without a secret has secrets")
	}
}

// A service or proxy that echoes the request headers in an error page must
// not put the ClientToken credential into the error a caller logs.
func TestErrorBodiesNeverCarryTheClientToken(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{})
	c, id := register(t, srv)
	token := base64.StdEncoding.EncodeToString([]byte(id.UnixUser + ":" + id.Secret))
	srv.SetResponder(radartest.EndpointStatus, func(int) radartest.Reply {
		return radartest.Reply{Status: 500, Body: []byte("request headers:\nAuthorization: ClientToken " + token + "\nAccept: application/json")}
	})
	_, err := c.Status(ctxT(t), id, statusRequest(t))
	if err == nil {
		t.Fatal("call succeeded")
	}
	if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), strings.TrimRight(token, "=")) {
		t.Errorf("error carries the ClientToken credential: %v", err)
	}
	if !strings.Contains(err.Error(), "ClientToken [REDACTED]") {
		t.Errorf("error lost the body context: %v", err)
	}
}
