package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The updater's private state defaults to a directory inside the data dir
// (so a one-volume `docker run` works) and may be any other directory, but
// not the shared data dir itself.
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
	if c.StateDir != "/srv/radar/updater-state" {
		t.Errorf("default state dir = %q", c.StateDir)
	}
	c, err = LoadUpdater(map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_UPDATER_STATE_DIR": "/state"})
	if err != nil || c.StateDir != "/state" || c.DataDir != "/data" {
		t.Errorf("explicit state dir: %+v, %v", c, err)
	}
	_, err = LoadUpdater(map[string]string{"RADAR_ROOT_CA_FILE": ca, "RADAR_UPDATER_STATE_DIR": "/data/"})
	if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), "RADAR_UPDATER_STATE_DIR") {
		t.Errorf("state dir = data dir: %v", err)
	}
}
