//go:build arm.7

package buildinfo

// See goarm_arm5.go. GOARM=7 is what the release images for linux/arm/v7
// are built with (a Pi 2 or later in 32-bit mode).
const goarm = "7"
