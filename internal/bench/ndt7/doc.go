// Package ndt7 is the NDT7 fidelity benchmark: on an emulated link
// (internal/netemu: tbf-shaped, 20 ms RTT from a delay line), the real
// ndt-server serves in one network namespace; in the other the agent's NDT7
// runner and M-Lab's own ndt7-client take turns (A B A B), each a child
// process so its CPU time and peak RSS are its own. The agent's figures are
// read out of the result file it uploads, the way the pods service reads
// them; the CLI's from its own summary. `radar-bench ndt7` runs it (see
// docs/benchmarks/ndt7.md).
//
// The benchmark re-executes the binary it runs in for its helpers, the
// server and the delay lines (Children): the command that calls Run must
// also offer them. The agent's runner is a program of its own (agentrun).
// The package needs cgo and Linux (it embeds the real ndt-server); without
// them it is empty.
package ndt7
