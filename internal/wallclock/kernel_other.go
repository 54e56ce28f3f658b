//go:build !linux

package wallclock

import (
	"errors"
	"time"
)

// ReadKernel knows the kernel's sync status only on Linux.
func ReadKernel() (KernelState, error) {
	return KernelUnknown, errors.New("kernel sync status is read on Linux only")
}

// bootClock: this process's monotonic clock and an ID of this process
// alone, so corrections work within the process only.
func bootClock() (func() time.Duration, string) { return processClock() }
