/**
 * Child process for the SIGKILL test: spools frames as fast as it can into the dir given in argv[2],
 * never acking (its gateway never answers), printing "spooled N" after each durable append.
 */
import { silentLogger, type TransportResult } from '@wattsplit/wire';
import { SpoolingSender } from './spooling-sender.js';

const dir = process.argv[2] ?? '';
const sender = new SpoolingSender({
  spool: { dir },
  transport: { send: () => new Promise<TransportResult>(() => undefined), close: async () => undefined },
  logger: silentLogger,
});
sender.start();
let seq = 0;
function next(): void {
  if (seq >= 100_000) return;
  seq++;
  sender.enqueue({ hostId: 'h1', seq, bootId: 'b', monoNs: seq * 1e9, wallUnixNs: 1.7e18 + seq * 1e9, intervalMs: 1000 });
  process.stdout.write(`spooled ${seq}\n`);
  setImmediate(next);
}
next();
