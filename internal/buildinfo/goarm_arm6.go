//go:build arm.6 && !arm.7

package buildinfo

// See goarm_arm5.go.
const goarm = "6"
