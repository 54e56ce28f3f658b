// Package e2e holds the end-to-end tests of a whole pod on this machine's
// Docker engine: the real images built from the Dockerfile, the real
// docker-compose.yml, the agent and the updater against a local pods
// service (radar-devserver), a loopback registry and a development release
// PKI; and the README's quick start tried on a fresh clone.
package e2e
