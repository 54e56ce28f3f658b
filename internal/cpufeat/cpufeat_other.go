//go:build !amd64 && !arm64 && !arm

package cpufeat

func aes() (bool, string) { return false, "no AES detection on this architecture" }
