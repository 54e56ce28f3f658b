// Package buildinfo owns the identity of a build: its version, commit and
// build time (stamped by the linker), and the distribution name under which
// the pods service knows a pod.
package buildinfo

import (
	"runtime"
	"time"
)

// Stamped at link time with -X (see the Makefile). The defaults mark a
// developer build; Version must stay valid semver because the updater
// compares versions.
var (
	Version = "0.0.0-dev"
	Commit  = "unknown"
	// Date is the build time in RFC 3339. The updater uses it as a lower bound
	// for a plausible wall clock (a Pi without RTC boots in 1970).
	Date = ""
)

// Distribution is the name the pods service uses for a pod's platform, as the
// agents already in the field report it: GOOS-GOARCH, with the ARM version
// appended on 32-bit ARM ("linux-arm64", "linux-amd64", "linux-armv7").
func Distribution() string { return distribution(runtime.GOOS, runtime.GOARCH, goarm) }

// distribution spells the name the way the field agent's build does:
// ${GOOS}-${GOARCH}, and ${GOOS}-${GOARCH}v${GOARM} when GOARM is set
// (which the Go toolchain does for GOARCH=arm only).
func distribution(goos, goarch, goarm string) string {
	d := goos + "-" + goarch
	if goarm != "" {
		d += "v" + goarm
	}
	return d
}

// GOARM is the ARM architecture version this binary was compiled for ("5",
// "6" or "7"; without a ",softfloat"/",hardfloat" suffix), and empty on
// every GOARCH but arm. It comes from the toolchain's arm.N build tags, so
// it holds for test binaries and stripped builds alike.
func GOARM() string { return goarm }

// Arch is the hardware platform reported to the service ("arm64", "arm", "amd64").
func Arch() string { return runtime.GOARCH }

// OS is the operating system reported to the service.
func OS() string { return runtime.GOOS }

// BuildTime parses Date; it is the zero time for unstamped builds.
func BuildTime() time.Time {
	t, err := time.Parse(time.RFC3339, Date)
	if err != nil {
		return time.Time{}
	}
	return t
}

// AgentUserAgent is the User-Agent of every request the agent makes to the
// pods service: the service treats a connection as a pod's only when the user
// agent starts with "RadarPods".
func AgentUserAgent() string { return "RadarPodsAgent/" + Version }

// UpdaterUserAgent identifies the updater to registries and the CRL host.
func UpdaterUserAgent() string { return "RadarPodsUpdater/" + Version }
