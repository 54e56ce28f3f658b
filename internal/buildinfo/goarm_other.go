//go:build !arm

package buildinfo

// goarm is set only for GOARCH=arm (see goarm_arm*.go).
const goarm = ""
