/** Injectable clock: the simulator drives simulated time through it; the real one reads the OS clocks. */
export interface AgentClock {
  /** CLOCK_MONOTONIC, ns. */
  monoNs(): number;
  /** CLOCK_REALTIME, ns since the Unix epoch. */
  wallUnixNs(): number;
}

export const systemClock: AgentClock = {
  // process.hrtime is CLOCK_MONOTONIC (ns since boot; exact as a number for 104 days of uptime, ns-close after).
  monoNs: () => Number(process.hrtime.bigint()),
  wallUnixNs: () => Date.now() * 1_000_000,
};
