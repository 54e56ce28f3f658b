//go:build linux && cgo

package main

import "testing"

func TestAllAddresses(t *testing.T) {
	for addr, want := range map[string]bool{
		":3000": true, "0.0.0.0:3000": true, "[::]:3000": true,
		"127.0.0.1:3000": false, "172.17.0.1:0": false, "localhost:3000": false, "bad": false,
	} {
		if got := allAddresses(addr); got != want {
			t.Errorf("allAddresses(%q) = %v, want %v", addr, got, want)
		}
	}
}
