//go:build amd64 || arm64

package cpufeat

import (
	"runtime"

	"github.com/klauspost/cpuid/v2"
)

func aes() (bool, string) {
	// amd64 exposes AES-NI through CPUID; arm64 through HWCAP, which cpuid
	// reads as AESARM.
	feature, name := cpuid.AESNI, "cpuid AESNI"
	if runtime.GOARCH == "arm64" {
		feature, name = cpuid.AESARM, "cpuid AESARM (HWCAP)"
	}
	return cpuid.CPU.Supports(feature), name
}
