//go:build !linux

package telemetry

// isTerminal is false off Linux, where the pod does not run: logs stay
// JSON unless text is asked for.
func isTerminal(uintptr) bool { return false }
