package radar_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
)

func TestIdentityPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, ok, err := radar.LoadIdentity(dir); ok || err != nil {
		t.Fatalf("fresh data dir: ok=%v err=%v", ok, err)
	}

	// A real registration, persisted and read back as a restarted agent would.
	srv := radartest.Start(t, radartest.Options{})
	id, err := newClient(srv).Register(ctxT(t), radar.RegisterRequest{RegistrationToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if err := radar.SaveIdentity(dir, id); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, radar.IdentityFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("identity mode %v, want 0600", st.Mode().Perm())
	}
	got, ok, err := radar.LoadIdentity(dir)
	if err != nil || !ok {
		t.Fatalf("reload: ok=%v err=%v", ok, err)
	}
	if got.UnixUser != id.UnixUser || got.Secret != id.Secret || got.ID != id.ID ||
		got.AccountID == nil || *got.AccountID != *id.AccountID || got.LocationID != nil {
		t.Fatalf("reloaded %#v, saved %#v", got, id)
	}
	var onDisk map[string]any
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &onDisk); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "unix_user", "secret", "account_id", "location_id"} {
		if _, ok := onDisk[k]; !ok {
			t.Errorf("identity file lacks %q: %s", k, b)
		}
	}

	// Replacing it leaves no temp files behind and keeps the mode.
	id2 := got
	id2.Secret = "rotatedsecr"
	if err := radar.SaveIdentity(dir, id2); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), atomicfile.TempPrefix) {
			t.Errorf("leftover temp file %s", e.Name())
		}
	}
	if got, _, _ := radar.LoadIdentity(dir); got.Secret != "rotatedsecr" {
		t.Fatalf("replacement not visible: %v", got)
	}
	// A leftover of an interrupted write does not confuse the reader.
	if err := os.WriteFile(filepath.Join(dir, atomicfile.TempPrefix+radar.IdentityFile+"-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := radar.LoadIdentity(dir); !ok || err != nil || got.Secret != "rotatedsecr" {
		t.Fatalf("with a torn temp file: %v %v %v", got, ok, err)
	}
}

func TestIdentityLoadErrors(t *testing.T) {
	tests := []struct {
		name, content string
	}{
		{"corrupt", "{not json"},
		{"no secret", `{"id":1,"unix_user":"rabcdefghijk"}`},
		{"no unix_user", `{"id":1,"secret":"abcdefghijk"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, radar.IdentityFile), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := radar.LoadIdentity(dir); err == nil || ok {
				t.Fatalf("loaded a broken identity: ok=%v err=%v", ok, err)
			}
		})
	}
	if err := radar.SaveIdentity(t.TempDir(), radar.Identity{UnixUser: "r1"}); err == nil {
		t.Fatal("saved an identity without secret")
	}
}

func TestIdentityNeverPrintsSecret(t *testing.T) {
	acct := int64(7)
	id := radar.Identity{ID: 42, UnixUser: "rabcdefghijk", Secret: "S3cr3tS3cr3", AccountID: &acct}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("registered", "pod", id)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("registered", "pod", id)
	outputs := []string{
		buf.String(),
		fmt.Sprint(id), fmt.Sprintf("%v %+v %#v %s", id, id, id, id),
		fmt.Errorf("register %v: %w", id, os.ErrClosed).Error(),
	}
	for _, out := range outputs {
		if strings.Contains(out, id.Secret) {
			t.Errorf("secret printed: %s", out)
		}
		if !strings.Contains(out, id.UnixUser) {
			t.Errorf("pod id missing: %s", out)
		}
	}
}
