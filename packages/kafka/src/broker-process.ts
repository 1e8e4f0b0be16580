/**
 * A Kafka broker process of our own (scripts/kafka.sh: KRaft, single node, loopback), for tests that
 * need to stop and restart the broker and for benchmarks. The shared test broker comes from the
 * environment (WATTSPLIT_TEST_KAFKA, set by scripts/services.mjs through scripts/test.mjs).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WattsplitError } from '@wattsplit/wire';

/** The repository root: WATTSPLIT_REPO_ROOT, else three levels above this file (packages/kafka/dist). */
export function repoRoot(): string {
  const env = process.env.WATTSPLIT_REPO_ROOT;
  if (env && existsSync(join(env, 'scripts/kafka.sh'))) return env;
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

function script(name: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const path = join(repoRoot(), 'scripts', name);
  return new Promise((resolve, reject) => {
    execFile('bash', [path, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new WattsplitError('TRANSPORT_UNAVAILABLE', `${name} ${args.join(' ')} failed: ${stderr.trim().split('\n').slice(-5).join(' | ') || err.message}`, { cause: err, details: { script: name, args } }));
        return;
      }
      resolve(stdout.trim().split('\n').pop() ?? '');
    });
  });
}

export class KafkaBrokerProcess {
  private port: string | undefined;
  constructor(readonly name: string) {
    if (!/^[a-z0-9-]{1,40}$/.test(name)) throw new WattsplitError('CONFIG_INVALID', `broker name ${JSON.stringify(name)} must be 1-40 chars of [a-z0-9-]`);
  }

  /** Starts the broker (on its previous port after a stop with keepData) and returns host:port. */
  async start(): Promise<string> {
    const args = ['start', this.name];
    if (this.port) args.push(this.port);
    const addr = await script('kafka.sh', args, 100_000);
    if (!/^127\.0\.0\.1:\d+$/.test(addr)) throw new WattsplitError('TRANSPORT_UNAVAILABLE', `kafka.sh start printed ${JSON.stringify(addr)}, expected 127.0.0.1:PORT`);
    this.port = addr.slice(addr.indexOf(':') + 1);
    return addr;
  }

  /** Stops the broker; keepData keeps its log so start() brings the same topics and offsets back. */
  async stop(keepData = false): Promise<void> {
    await script('kafka.sh', keepData ? ['stop', this.name, '--keep-data'] : ['stop', this.name], 40_000);
    if (!keepData) this.port = undefined;
  }
}

/** Why Kafka tests cannot run here, or undefined when they can (WATTSPLIT_TEST_KAFKA is set). */
export function kafkaUnavailableReason(): string | undefined {
  if (process.env.WATTSPLIT_TEST_KAFKA) return undefined;
  return 'WATTSPLIT_TEST_KAFKA is not set (run through scripts/test.mjs, which starts a broker with scripts/services.mjs, or export it)';
}

/** True when the broker jars are cached and java exists, so a test may start its own broker. */
export function canStartOwnBroker(): boolean {
  const root = repoRoot();
  return existsSync(join(root, 'scripts/kafka.sh')) && existsSync(join(root, '.cache/kafka')) && !!process.env.PATH?.split(':').some((d) => existsSync(join(d, 'java')));
}
