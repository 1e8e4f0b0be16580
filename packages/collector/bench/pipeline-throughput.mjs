#!/usr/bin/env node
// End-to-end collector throughput: frames → InProcessBus → align → cpu_share → ChdbStore → attribution topic.
//   node packages/collector/bench/pipeline-throughput.mjs   (after tsc -b packages/collector)
//   HOSTS=20 VMS=10 FRAMES=60 PARTITIONS=4
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InProcessBus, TOPICS, silentLogger, encodeFrame } from '@wattsplit/wire';
import { startEmbeddedCollector } from '../dist/index.js';
import { frameAt } from '../dist/test-frames.js';

const HOSTS = Number(process.env.HOSTS ?? 20);
const VMS = Number(process.env.VMS ?? 10);
const FRAMES = Number(process.env.FRAMES ?? 60);
const PARTITIONS = Number(process.env.PARTITIONS ?? 4);
const dir = mkdtempSync(join(tmpdir(), 'wattsplit-bench-'));
const bus = new InProcessBus({ partitions: PARTITIONS });
const c = await startEmbeddedCollector({ dataDir: join(dir, 'db'), bus, logger: silentLogger });

const hosts = Array.from({ length: HOSTS }, (_, h) => ({
  hostId: `hv-${h}`,
  raplW: 300,
  dramW: 40,
  gpuW: 70,
  bmcW: 600,
  vms: Object.fromEntries(Array.from({ length: VMS }, (_, v) => [`h${h}-vm${v}`, [`tenant-${v % 5}`, 0.2 + v * 0.1]])),
}));
const msgs = [];
for (let seq = 1; seq <= FRAMES; seq++) for (const h of hosts) msgs.push({ key: h.hostId, value: encodeFrame(frameAt(h, seq)) });
const t0 = performance.now();
await bus.producer().send(TOPICS.telemetry, msgs);
await bus.idle();
const s = (performance.now() - t0) / 1000;
const intervals = c.pipeline.stats.intervalsStored;
const rows = (await c.store.query('SELECT count() AS n FROM attributions')).rows[0].n;
console.log(`${HOSTS} hosts × ${VMS} VMs × ${FRAMES} frames, ${PARTITIONS} partitions, cpu_share only`);
console.log(`frames ${msgs.length}, intervals stored ${intervals}, attribution rows ${rows}`);
console.log(`wall ${s.toFixed(2)} s → ${(msgs.length / s).toFixed(0)} frames/s, ${(intervals / s).toFixed(0)} intervals/s, ${(Number(rows) / s).toFixed(0)} attribution rows/s`);
console.log(`${cpus().length} CPUs (${cpus()[0]?.model}), node ${process.version}, ${new Date().toISOString()}`);
await c.close();
await bus.close();
rmSync(dir, { recursive: true, force: true });
