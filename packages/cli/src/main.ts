#!/usr/bin/env node
/**
 * The `wattsplit` command. Each subcommand lives in commands/<name>.ts and is loaded on demand, so a
 * command's heavy dependencies (chDB, tfjs, grpc) load only when that command runs.
 */
import { isWattsplitError } from '@wattsplit/wire';

interface Command {
  summary: string;
  load: () => Promise<{ run(argv: string[]): Promise<number> }>;
}

const COMMANDS: Record<string, Command> = {
  demo: { summary: 'run the embedded pipeline on a simulated fleet and report accuracy', load: () => import('./commands/demo.js') },
  query: { summary: 'run SQL against the embedded store (the demo data directory) or a server', load: () => import('./commands/query.js') },
  'gpu-replay': { summary: 'attribute a recorded NVML trace (shared/data/gpu format) to its tenants', load: () => import('./commands/gpu-replay.js') },
  agent: { summary: 'run the hypervisor agent (--check: show what it can see)', load: () => import('./commands/agent.js') },
  gateway: { summary: 'run the gRPC ingest gateway', load: () => import('./commands/gateway.js') },
  collector: { summary: 'run the collector (NestJS) against a bus and a store', load: () => import('./commands/collector.js') },
  bill: { summary: 'bills per tenant: tariff, PUE, carbon, and the CPU-share comparison (fairness)', load: () => import('./commands/bill.js') },
  serve: { summary: 'serve the REST API and dashboard over a store (no bus)', load: () => import('./commands/serve.js') },
  models: { summary: 'the models the collector trains: list, show, train, promote, rollback', load: () => import('./commands/models.js') },
  'cap-plan': { summary: 'plan power caps with the live-migration transient', load: () => import('./commands/cap-plan.js') },
  'cap-apply': { summary: "print (default) or perform (--execute) a cap plan's libvirt and cgroup actions", load: () => import('./commands/cap-apply.js') },
};

/** Commands other tools start (not listed in the usage). */
const HIDDEN: Record<string, Command> = {
  'fleet-sim': { summary: 'simulated agents of npm run fleet-demo (scripts/fleet-demo.mjs)', load: () => import('./commands/fleet-sim.js') },
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    'usage: wattsplit <command> [options]   (wattsplit <command> --help for its options)',
    '',
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(w)}  ${c.summary}`),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name] ?? HIDDEN[name];
  if (!cmd) {
    console.error(`wattsplit: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  const mod = await cmd.load();
  return mod.run(rest);
}

/** Exit statuses: 0 done, 1 failed (or a plan that is not safe), 2 bad usage or configuration. */
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

/**
 * `wattsplit bill | head`: the reader closes the pipe early. Like a SIGPIPE'd Unix tool the command
 * stops talking, quietly: further writes to that stream are dropped (no EPIPE stack trace) and the
 * command still finishes and closes what it opened (a chDB session must be closed, not abandoned).
 */
function dropWritesWhenClosed(stream: NodeJS.WriteStream): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') {
      stream.write = () => true;
      return;
    }
    if (stream !== process.stderr) process.stderr.write(`wattsplit: cannot write output: ${e.message}\n`);
    process.exit(EXIT_FAILED);
  });
}
dropWritesWhenClosed(process.stdout);
dropWritesWhenClosed(process.stderr);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // Input and environment errors are reported as one clear line; only real bugs show a stack.
    if (isWattsplitError(e)) {
      console.error(`wattsplit: ${e.code}: ${e.message}`);
      process.exitCode = e.code === 'CONFIG_INVALID' ? EXIT_USAGE : EXIT_FAILED;
      return;
    }
    console.error('wattsplit: internal error:', e);
    process.exitCode = EXIT_FAILED;
  },
);
