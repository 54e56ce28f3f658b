//go:build linux && cgo

package main

import "testing"

// The ndt7 benchmark re-executes this binary by its children's names: they
// must be subcommands here.
func TestNDT7ChildrenAreCommands(t *testing.T) {
	for _, name := range []string{"ndt7", "ndt7-server", "delayline"} {
		if _, ok := commands[name]; !ok {
			t.Errorf("no command %s", name)
		}
	}
}
