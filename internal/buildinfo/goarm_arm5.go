//go:build arm && !arm.6

package buildinfo

// The toolchain sets the feature tags arm.5 … arm.N for GOARM=N (see
// `go help buildconstraint`); the highest one present is the version.
const goarm = "5"
