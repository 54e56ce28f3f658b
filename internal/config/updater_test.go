package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The updater's private state defaults to a directory outside the data
// dir, and may be any other directory that neither is, lies in nor holds
// the data dir, however the paths are written (.., trailing slashes,
// symbolic links, parts that do not exist yet).
func TestUpdaterStateDir(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadUpdater(map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_DATA_DIR": "/srv/radar"})
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != DefaultUpdaterStateDir || DefaultUpdaterStateDir != "/var/lib/radar-updater" {
		t.Errorf("default state dir = %q", c.StateDir)
	}
	c, err = LoadUpdater(map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_UPDATER_STATE_DIR": ""})
	if err != nil || c.StateDir != DefaultUpdaterStateDir {
		t.Errorf("empty state dir: %q, %v", c.StateDir, err)
	}

	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	linkToData := filepath.Join(dir, "link-to-data")
	if err := os.Symlink(data, linkToData); err != nil {
		t.Fatal(err)
	}
	linkToDir := filepath.Join(data, "link-to-dir")
	if err := os.Symlink(dir, linkToDir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		state, data string
		problem     string // "" = accepted
	}{
		{"/state", "/data", ""},
		{"/data2", "/data", ""},
		{"/var/lib/radar-updater", "/data", ""},
		{filepath.Join(dir, "state"), data, ""},
		{"/data/", "/data", "itself"},
		{"/data/updater-state", "/data", "inside"},
		{"/data/a/b/../c", "/data", "inside"},
		{"/var/lib/../../data/x", "/data", "inside"},
		{"/", "/data", "contain"},
		{"/srv", "/srv/radar", "contain"},
		{filepath.Join(linkToData, "state"), data, "inside"}, // a link to the data dir
		{filepath.Join(data, "state"), linkToData, "inside"}, // the data dir given as a link
		{linkToData, data, "itself"},
		{filepath.Join(linkToDir, "elsewhere"), data, ""}, // inside only by name: the link leads out
		{filepath.Join(data, "not", "yet", "there"), data, "inside"},
	} {
		_, err := LoadUpdater(map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_UPDATER_STATE_DIR": tc.state, "RADAR_DATA_DIR": tc.data})
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("state %s, data %s: refused: %v", tc.state, tc.data, err)
		case tc.problem != "" && (err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), "RADAR_UPDATER_STATE_DIR") || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("state %s, data %s: %v, want a refusal naming RADAR_UPDATER_STATE_DIR (%s)", tc.state, tc.data, err, tc.problem)
		}
	}
}
