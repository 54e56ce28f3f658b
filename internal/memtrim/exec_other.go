//go:build !linux

package memtrim

// releaseExecutable does nothing where madvise on the executable's
// mappings is not supported: the pod runs on Linux only.
func releaseExecutable() error { return nil }
