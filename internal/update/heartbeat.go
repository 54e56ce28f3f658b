package update

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/radarpod/radarpod/internal/telemetry"
)

// Component names the updater in its heartbeat file.
const Component = "radar-updater"

// MaxSilence is how old the heartbeat may be before the updater counts as
// unhealthy. Every long step (verify, pull, health wait, lock wait) beats
// while it runs, so only a stuck process or an unwritable data dir goes
// silent this long.
const MaxSilence = time.Minute

// heartbeat proves liveness without a listening socket: the loop touches a
// file in the data dir and `radar-updater healthcheck` reads its age.
type heartbeat struct {
	path string
	// every is how often during() beats while a long step runs.
	every time.Duration
}

func newHeartbeat(dataDir string) *heartbeat {
	return &heartbeat{path: telemetry.HealthFile(dataDir, Component), every: 5 * time.Second}
}

// beat touches the file; it only rewrites the inode's times, so a Pi's SD
// card sees no data write once the file exists.
func (h *heartbeat) beat() {
	if h == nil {
		return
	}
	now := time.Now()
	if err := os.Chtimes(h.path, now, now); errors.Is(err, fs.ErrNotExist) {
		os.WriteFile(h.path, []byte(Component+"\n"), 0o644)
	}
}

// during runs fn, beating until it returns.
func (h *heartbeat) during(fn func() error) error {
	if h == nil {
		return fn()
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(h.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				h.beat()
			}
		}
	}()
	defer close(done)
	return fn()
}

// CheckAlive backs `radar-updater healthcheck`: nil when the updater in
// this data dir has beaten within maxSilence.
func CheckAlive(dataDir string, now time.Time, maxSilence time.Duration) error {
	st, err := os.Stat(telemetry.HealthFile(dataDir, Component))
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("updater has not started (no heartbeat file)")
	}
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	if age := now.Sub(st.ModTime()); age > maxSilence {
		return fmt.Errorf("updater silent for %s", age.Round(time.Second))
	}
	return nil
}
