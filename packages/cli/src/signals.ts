/** Process signals a long-running command stops on (agent, gateway, collector). */

/** Resolves with the signal's name on the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<string> {
  return new Promise((res) => {
    const on = (s: string) => () => res(s);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}
