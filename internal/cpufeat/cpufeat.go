// Package cpufeat owns the question "can this CPU do AES in hardware?", which
// decides whether an NDT7 test can afford TLS without the encryption itself
// becoming the bottleneck on a small board.
package cpufeat

// AES reports whether the CPU has AES instructions and names the evidence
// (the feature flag consulted), so the choice can be logged.
func AES() (bool, string) { return aes() }
