//go:build arm

package cpufeat

import "golang.org/x/sys/cpu"

// cpuid detects nothing on 32-bit ARM, so read the kernel's HWCAP2 through x/sys/cpu.
func aes() (bool, string) { return cpu.ARM.HasAES, "x/sys/cpu ARM.HasAES (HWCAP2)" }
