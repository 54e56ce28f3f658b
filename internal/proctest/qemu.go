package proctest

import (
	"os/exec"
	"testing"
)

// Emulator runs binaries built for another platform (BuildFor) under
// Debian's qemu-user, as a given CPU model: the model decides which CPU
// features the binary finds in its auxiliary vector (AES or not), so a
// test can stand for a particular Raspberry Pi.
type Emulator struct {
	Platform Platform
	// CPU is qemu's -cpu argument: a model ("cortex-a7"), optionally
	// with properties ("cortex-a72,neon=off,vfp=off").
	CPU string
}

// emulators are the qemu-user binaries by GOARCH.
var emulators = map[string]string{"arm64": "qemu-aarch64", "arm": "qemu-arm"}

// Start is the package's Start for bin, a build for e.Platform, run by
// qemu-user. Signals reach the emulated process (qemu-user forwards
// them); Kill ends the emulator and with it the process.
func (e Emulator) Start(t testing.TB, bin string, env map[string]string, args ...string) *Process {
	t.Helper()
	return Start(t, e.path(t), env, append([]string{"-cpu", e.CPU, bin}, args...)...)
}

// path finds qemu-user's emulator for the platform: Debian's qemu-user
// package names it qemu-aarch64 / qemu-arm, qemu-user-static adds a
// "-static" suffix.
func (e Emulator) path(t testing.TB) string {
	t.Helper()
	name, ok := emulators[e.Platform.GOARCH]
	if !ok {
		t.Fatalf("proctest: no qemu-user emulator for %s", e.Platform)
	}
	for _, n := range []string{name, name + "-static"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("proctest: %s not found on PATH: install Debian's qemu-user (.ci/run does) to run the %s binaries", name, e.Platform)
	return ""
}
