/**
 * examples/stream-consumer.mjs against a real broker: it prints each tenant's power per window from
 * wattsplit.attribution.v1, and counts a host interval delivered twice only once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { AttributionBatch, EntityKind, TOPICS, silentLogger } from '@wattsplit/wire';
import { KafkaBus } from './kafkajs-bus.js';
import { NamespacedBus } from './namespaced-bus.js';
import { waitFor } from './bus-contract-suite.js';

const brokers = process.env.WATTSPLIT_TEST_KAFKA;
const skip = brokers ? false : 'Kafka unavailable: WATTSPLIT_TEST_KAFKA is not set (run through scripts/test.mjs)';
const example = fileURLToPath(new URL('../../../examples/stream-consumer.mjs', import.meta.url));

/** One host interval: acme's VM gets 6 J dynamic + 2 J static, the host overhead 1 J. */
function batch(host: string, seq: number): Uint8Array {
  const common = { hostId: host, seq, t0UnixNs: seq * 1e9, t1UnixNs: (seq + 1) * 1e9, method: 'cpu_share', modelVersion: '1', hardwareClass: 'x', note: '', source: 'rapl' };
  return AttributionBatch.encode({
    ...common,
    records: [
      { ...common, kind: EntityKind.ENTITY_KIND_VM, vmUuid: 'u1', vmName: 'web', tenant: 'acme', dynamicJoules: 6, staticJoules: 2, joulesLow: 7, joulesHigh: 9 },
      { ...common, kind: EntityKind.ENTITY_KIND_HOST_OVERHEAD, vmUuid: '', vmName: '', tenant: '', dynamicJoules: 1, staticJoules: 0, joulesLow: 1, joulesHigh: 1 },
    ],
    measuredJoules: { rapl: 9 },
  }).finish();
}

test('examples/stream-consumer.mjs: per-tenant power per window; a repeated interval is skipped, not summed', { skip, timeout: 90_000 }, async (t) => {
  const ns = `sc-${randomUUID().slice(0, 8)}`;
  const inner = new KafkaBus({ brokers: [brokers!], partitions: 2, logger: silentLogger });
  const bus = new NamespacedBus(inner, ns);
  const producer = bus.producer();
  let out = '';
  const child = spawn(process.execPath, [example, '--window', '1', '--namespace', ns, '--group', `${ns}-g`], { env: { ...process.env, WATTSPLIT_KAFKA_BROKERS: brokers! }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  t.after(async () => {
    child.kill('SIGKILL');
    await producer.close();
    await inner.deleteTopic(bus.topic(TOPICS.attribution)).catch(() => undefined);
    await inner.close();
  });
  await waitFor(() => out.includes('Ctrl-C to stop'), 30_000, `the consumer to start (output so far: ${out})`);
  // It reads from the end of the topic once it has joined: keep publishing (each interval twice) until
  // a window has seen both intervals and repeats.
  let seq = 0;
  const windowsWithRepeats = () => [...out.matchAll(/(\d+) host intervals \((\d+) repeated, skipped\)/g)];
  await waitFor(
    async () => {
      seq++;
      for (const host of ['hv-a', 'hv-b']) {
        const r = await producer.send(TOPICS.attribution, [
          { key: host, value: batch(host, seq) },
          { key: host, value: batch(host, seq) },
        ]);
        assert.equal(r.kind, 'ok');
      }
      await new Promise((res) => setTimeout(res, 200));
      return windowsWithRepeats().length >= 2;
    },
    60_000,
    `windows with skipped repeats (output so far: ${out})`,
  );
  // In each window, acme's power is 8 J per interval counted: repeats would double it.
  const blocks = out.split('\n\n').filter((b) => /host intervals/.test(b));
  let checked = 0;
  for (const b of blocks) {
    const n = Number(/(\d+) host intervals/.exec(b)![1]);
    const acme = /^acme\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$/m.exec(b);
    if (n === 0) continue;
    assert.ok(acme, `a window with ${n} intervals lists acme:\n${b}`);
    assert.equal(Number(acme[1]), 8 * n, `acme power = 8 W × ${n} intervals in a 1 s window:\n${b}`);
    assert.equal(Number(acme[2]), 6 * n);
    assert.equal(Number(acme[3]), 2 * n);
    assert.match(b, new RegExp(`^\\(host overhead\\)\\s+${n}\\.0\\s`, 'm'));
    checked++;
  }
  assert.ok(checked >= 2, `at least two windows with intervals (${checked})`);
  child.kill('SIGINT');
  const code = await new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
  assert.equal(code, 0, `exits cleanly on SIGINT:\n${out.slice(-500)}`);
});
