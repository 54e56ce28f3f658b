package ndt7

import (
	"fmt"

	"github.com/radarpod/radarpod/internal/cpufeat"
)

// ChooseScheme resolves RADAR_NDT7_SCHEME ("auto", "wss" or "ws") to the
// scheme a test uses and a human-readable reason. auto picks wss only when
// the CPU encrypts in hardware: software AES on a Pi caps the measured rate
// well below what the line carries.
func ChooseScheme(setting string) (scheme, reason string) {
	if setting == "wss" || setting == "ws" {
		return setting, "RADAR_NDT7_SCHEME=" + setting
	}
	return schemeFor(cpufeat.AES())
}

func schemeFor(hasAES bool, evidence string) (string, string) {
	if hasAES {
		return "wss", fmt.Sprintf("auto: CPU has AES in hardware (%s)", evidence)
	}
	return "ws", fmt.Sprintf("auto: CPU lacks AES in hardware (%s); TLS would bound the measurement", evidence)
}
