// Package faults holds the fault drills: tests that run the shipped
// radar-agent binary (built by proctest, CGO_ENABLED=0) against the strict
// pods-service double (radartest) and the fake Ookla CLI (ooklatest), and
// break things on purpose to prove the pod's promises:
//
//   - kill -9 at random moments while tests run and the service flaps
//     between 201, 500, time-outs and lost 201s: no result is lost,
//     duplicates are counted;
//   - a long upload outage while the service keeps requesting tests:
//     everything buffered is delivered afterwards, oldest first;
//   - a full disk (a small tmpfs as the data dir): the agent keeps running,
//     evicts oldest first, counts and reports every eviction, and delivers
//     what it kept once space returns;
//   - garbage from the service on every endpoint and on the channel: the
//     agent stays up, healthy and bounded in memory, and reports it;
//   - a hostile agent: a pod on the real Docker engine, as compose
//     deploys it, attacked from inside the agent's container (its uid and
//     mounts) through everything it shares with the updater: the updater
//     keeps working, its state stays untouched, and nothing but a signed,
//     newer agent is ever installed (figures in group
//     "faults-hostile-agent").
//
// The package has no code of its own; the drills are its tests. By default
// they run shortened (as `make test` runs them); `make faults` runs the full
// size with -faults.full and records the figures with benchreport (group
// "faults"). The disk drill mounts a tmpfs and the hostile-agent drill
// uses the Docker engine and Debian's docker-registry, so the drills need
// root.
package faults
