package update

import (
	"testing"

	"github.com/radarpod/radarpod/internal/update/statedir"
)

// openState opens a state directory for a test's direct use of the
// journal and the heartbeat, as the updater holds it.
func openState(t testing.TB, dir string) *statedir.Dir {
	t.Helper()
	d, err := statedir.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
