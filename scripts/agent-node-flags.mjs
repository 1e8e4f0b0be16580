// The V8 flags the packaged agent's wrapper runs node with (scripts/package-agent.mjs writes them into
// bin/wattsplit-agent; deploy/systemd/wattsplit-agent.service repeats them). The agent benchmarks import them, so a
// benchmark always measures the process an operator runs. Why each: scripts/package-agent.mjs, above its wrapper.
export const AGENT_NODE_FLAGS = Object.freeze(['--max-semi-space-size=1', '--single-threaded', '--optimize-for-size', '--no-allocation-site-pretenuring']);
