package update

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/update/statedir"
)

// Component names the updater in its heartbeat file.
const Component = "radar-updater"

// MaxSilence is how old the heartbeat may be before the updater counts as
// unhealthy. Every long step (verify, pull, health wait, lock wait) beats
// while it runs, so only a stuck process or an unwritable data dir goes
// silent this long.
const MaxSilence = time.Minute

// heartbeat proves liveness without a listening socket: the loop touches a
// file in its private state directory and `radar-updater healthcheck` reads
// its age.
//
// It used to live in the shared data volume. There the agent could forge
// it (keep a hung updater "healthy" by touching it) or plant a dangling
// link at its name for the updater to create the file through (when the
// file was missing, os.WriteFile followed the link, e.g. onto the CRL
// state). Liveness is the updater's own business, so the file moved into
// the state directory the agent cannot reach, where it is also created
// exclusively (statedir.Touch). When that directory stops being the one
// opened at start-up, the beats stop and Docker marks the updater
// unhealthy, which is what an operator should see.
type heartbeat struct {
	state *statedir.Dir
	// every is how often during() beats while a long step runs.
	every time.Duration
}

// heartbeatFile is the heartbeat's name in the state directory.
var heartbeatFile = filepath.Base(telemetry.HealthFile("", Component))

func newHeartbeat(state *statedir.Dir) *heartbeat {
	return &heartbeat{state: state, every: 5 * time.Second}
}

// beat touches the file; it only rewrites the inode's times, so a Pi's SD
// card sees no data write once the file exists.
func (h *heartbeat) beat() {
	if h == nil {
		return
	}
	h.state.Touch(heartbeatFile, time.Now(), []byte(Component+"\n"))
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

// CheckAlive backs `radar-updater healthcheck`: nil when the updater whose
// state directory is stateDir has beaten within maxSilence.
func CheckAlive(stateDir string, now time.Time, maxSilence time.Duration) error {
	st, err := os.Lstat(filepath.Join(stateDir, heartbeatFile))
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
