package wallclock

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ReadKernel asks the kernel whether NTP synchronizes the clock. adjtimex
// with Modes 0 only reads, which needs no privilege and which Docker's
// default seccomp profile allows.
func ReadKernel() (KernelState, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return KernelUnknown, fmt.Errorf("adjtimex: %w", err)
	}
	if state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0 {
		return KernelUnsynced, nil
	}
	return KernelSynced, nil
}

// bootIDPath names the current boot; it changes at every reboot and is the
// same in every container on the host.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// bootClock returns CLOCK_BOOTTIME (time since boot, suspend included,
// never stepped) and the boot's ID. Where either is unavailable it falls
// back to this process's monotonic clock and an ID of this process alone:
// corrections then work within the process only.
func bootClock() (func() time.Duration, string) {
	id, err := os.ReadFile(bootIDPath)
	var ts unix.Timespec
	if err == nil && len(strings.TrimSpace(string(id))) > 0 && unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) == nil {
		return func() time.Duration {
			var ts unix.Timespec
			if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
				return 0
			}
			return time.Duration(ts.Nano())
		}, strings.TrimSpace(string(id))
	}
	return processClock()
}
