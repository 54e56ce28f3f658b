package dockertest

import (
	"testing"

	"github.com/radarpod/radarpod/internal/proctest"
)

// Binaries are static linux binaries for agent images, built once per test
// process by proctest.
type Binaries struct {
	// Agent is the real cmd/radar-agent.
	Agent string
	// Unhealthy runs but never passes its healthcheck (a broken release).
	Unhealthy string
	// Exiting exits at once with status 3.
	Exiting string
}

const brokenAgent = "./internal/dockertest/testdata/fakeagent"

// AgentBinaries builds (once per process) the binaries agent images are
// made of. Call proctest.Cleanup from TestMain to delete them.
func AgentBinaries(t testing.TB) Binaries {
	t.Helper()
	return Binaries{
		Agent:     proctest.Build(t, "./cmd/radar-agent"),
		Unhealthy: proctest.Build(t, brokenAgent, "-X main.mode=unhealthy"),
		Exiting:   proctest.Build(t, brokenAgent, "-X main.mode=exit"),
	}
}
