import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BusMessage, Logger, TelemetryFrame } from '@wattsplit/wire';
import { WallClockCheck } from './wall-clock-check.js';

const BUS_MS = Date.UTC(2026, 0, 1);

function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const noop = () => undefined;
  const logger = { warn: (_o: unknown, msg: string) => void warnings.push(msg), info: noop, debug: noop, error: noop, child: () => logger } as unknown as Logger;
  return { logger, warnings };
}
const frame = (host: string, wallMs: number): TelemetryFrame => ({ hostId: host, seq: 1, wallUnixNs: wallMs * 1e6 }) as TelemetryFrame;
const msg = (timestampMs = BUS_MS): BusMessage => ({ key: 'k', timestampMs }) as BusMessage;

test('wall clock check: a plausible clock is left alone; an implausible one is dated by the bus, with the anomaly', () => {
  const { logger } = recordingLogger();
  const c = new WallClockCheck({ maxAheadS: 300, maxBehindS: 3600, logger });
  const ok = frame('h', BUS_MS + 299_000);
  assert.equal(c.dateByBusIfImplausible(ok, msg()), undefined);
  assert.equal(ok.wallUnixNs, (BUS_MS + 299_000) * 1e6);
  const ahead = frame('h', BUS_MS + 301_000);
  assert.equal(c.dateByBusIfImplausible(ahead, msg())?.code, 'FRAME_CLOCK_IMPLAUSIBLE');
  assert.equal(ahead.wallUnixNs, BUS_MS * 1e6);
  const behind = frame('h', BUS_MS - 3601_000);
  assert.equal(c.dateByBusIfImplausible(behind, msg())?.code, 'FRAME_CLOCK_IMPLAUSIBLE');
  const noBusTime = frame('h', 0);
  assert.equal(c.dateByBusIfImplausible(noBusTime, msg(0)), undefined, 'no bus timestamp: nothing to compare with');
  assert.equal(noBusTime.wallUnixNs, 0);
});

test('wall clock check: logged once per host and episode; every implausible frame gets its anomaly', () => {
  const { logger, warnings } = recordingLogger();
  const c = new WallClockCheck({ logger });
  const bad = (h: string) => c.dateByBusIfImplausible(frame(h, 0), msg());
  assert.ok(bad('a'));
  assert.ok(bad('a'));
  assert.equal(warnings.length, 1);
  assert.ok(bad('b'));
  assert.equal(warnings.length, 2, 'per host');
  assert.equal(c.dateByBusIfImplausible(frame('a', BUS_MS), msg()), undefined);
  assert.ok(bad('a'));
  assert.equal(warnings.length, 3, 'a plausible frame ended the episode');
  assert.match(warnings[0]!, /host a seq 1: wall clock 1970-01-01T00:00:00.000Z is \d+ s behind the gateway's 2026-01-01T00:00:00.000Z \(tolerated: 300 s ahead, 2592000 s behind\)/);
});
