#!/usr/bin/env node
/**
 * `wattsplit-agent [flags]`: the hypervisor agent on its own, the same as `wattsplit agent [flags]`.
 *
 * This is the entry point of the packaged agent (scripts/package-agent.mjs bundles it into one file):
 * it imports the agent command only, so the bundle carries gRPC, protobuf, pino and the agent's
 * samplers, never chDB, TensorFlow.js, NestJS or Kafka. `--version` prints the package version and
 * the git commit it was built from (both defined by the bundler; `workspace` when run from dist/).
 */
import { isWattsplitError } from '@wattsplit/wire';
import { run } from './commands/agent.js';

/** Replaced by the bundler (esbuild `define`); undeclared in the workspace build. */
declare const WATTSPLIT_AGENT_VERSION: string | undefined;
const VERSION = typeof WATTSPLIT_AGENT_VERSION === 'string' ? WATTSPLIT_AGENT_VERSION : 'workspace';

/** Exit statuses as for `wattsplit`: 0 done, 1 failed, 2 bad usage or configuration. */
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-V') {
    console.log(`wattsplit-agent ${VERSION} (node ${process.version})`);
    return 0;
  }
  return run(argv);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (isWattsplitError(e)) {
      console.error(`wattsplit-agent: ${e.code}: ${e.message}`);
      process.exitCode = e.code === 'CONFIG_INVALID' ? EXIT_USAGE : EXIT_FAILED;
      return;
    }
    console.error('wattsplit-agent: internal error:', e);
    process.exitCode = EXIT_FAILED;
  },
);
