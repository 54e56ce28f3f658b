// Package memtrim gives back the memory a daemon's burst of work (start-up,
// a speed test) left resident but will not touch again while it idles: the
// heap's garbage and the pages of its own executable that only that work
// ran.
//
// A pod's daemons idle almost all of their lives, and their idle resident
// set is what they cost a 1 GB board. Measured with `radar-bench footprint`
// (docs/benchmarks/footprint.md), most of it was not the heap but the
// executable: start-up runs the package initialisers of some 300 packages,
// which lie all over the binary, and the kernel maps pages around each
// fault (fault-around), so after start-up about 90% of the binary's text
// and read-only data was mapped — 13 MB of the agent's 15 MB binary — although the
// idle loops use about 5 MB of it. Those pages are clean copies of the file:
// unmapping them loses nothing, they stay in the page cache (and come back
// with a minor fault if ever needed), and unmapped they are what the kernel
// reclaims first, whereas mapped executable pages are kept active.
package memtrim

import (
	"runtime/debug"
)

// Release collects the heap and returns its free pages to the kernel, then
// unmaps the executable's read-only pages (text and read-only data; only
// mappings that hold nothing but page-cache pages, so no data is lost).
// Call it when a burst of work has
// ended, not on a hot path: the collection costs about a millisecond at
// these heap sizes, and the code that runs next faults its pages back in.
func Release() error {
	debug.FreeOSMemory()
	return releaseExecutable()
}
