package agent

import (
	"context"
	"time"

	"github.com/radarpod/radarpod/internal/memtrim"
)

// settleCheck is how often the agent looks whether start-up has settled.
// Start-up's stragglers (the first clock check at 5 s, the channel's first
// sync) are done by the first look.
const settleCheck = 10 * time.Second

// settleLoop gives back what start-up left resident once the agent has
// settled: the start-up network check has finished, the live channel is up
// (or the pod is standalone) and no test is queued or running. It does so
// once; later bursts release their own (runNetCheck, testLoop).
func (a *Agent) settleLoop(ctx context.Context) {
	tick := time.NewTicker(settleCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a.mu.Lock()
		checked := a.lastCheck != nil
		a.mu.Unlock()
		if checked && (a.cfg.Standalone() || a.isChannelUp()) && !a.queue.busy() {
			a.releaseMemory("start-up")
			return
		}
	}
}

// releaseMemory gives back what a burst of work left resident, once the
// burst is over: start-up (config, Sentry, registration, the network
// check's handshakes with every host the pod needs), a later network check
// and each test run (the NDT7 recorder alone holds up to 4 MiB). The agent
// idles almost all of its life, so its idle RSS is what it costs a 1 GB
// board; measured with `radar-bench footprint`, the pages that start-up
// touched and idling never does (the executable's package initialisers,
// the start-up heap's garbage) were most of it (memtrim's doc says how).
func (a *Agent) releaseMemory(after string) {
	if err := memtrim.Release(); err != nil {
		// Nothing is lost but the saving: not worth a report.
		a.log.Debug("could not return memory to the kernel", "after", after, "err", err)
	}
}
