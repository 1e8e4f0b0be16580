// End to end, fleet mode: the shipped `wattsplit collector` pauses its training while ingest is behind
// and resumes once it has caught up (collector training-gate.ts). `wattsplit fleet-sim` → `wattsplit
// gateway` → Kafka (a broker of its own: the telemetry topic is fixed) → `wattsplit collector` →
// ClickHouse (the shared server of WATTSPLIT_TEST_CLICKHOUSE_URL, a database of its own). Once the
// collector is training, the test stops it (SIGSTOP) for 8 s while the agents go on sending at 1 Hz:
// on SIGCONT it has 8 s of frames to catch up on, so its ingest delay is above the configured 3 s
// (--train-yield-above-s 3; on its own this collector's delay is about a second). Asserted from the process's own log and /metrics: the gate's threshold is
// the flag's value; training paused ("training pauses") and resumed ("training resumes"), with paused
// time counted; ingest caught up (every host's frames stored up to the agents' latest); and both
// hardware classes still got their first model. Skips with the reason where Kafka or ClickHouse cannot
// be reached (scripts/test.mjs sets WATTSPLIT_TEST_KAFKA and WATTSPLIT_TEST_CLICKHOUSE_URL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = process.env.WATTSPLIT_REPO_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(root, 'packages/cli/dist/main.js');

/** scripts/lib/processes.mjs, the parts used here. */
interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly alive: boolean;
  log(): string;
}
interface Processes {
  Proc: new (name: string, cmd: string, args: string[], o: { env?: Record<string, string>; logDir: string; stdio?: string[] }) => Proc;
  chQuery(url: string, db: string, sql: string): Promise<Record<string, unknown>[]>;
  killAllNow(): void;
  script(name: string, args: string[], timeoutS: number): { ok: boolean; out?: string; why?: string };
  sleep(ms: number): Promise<void>;
  waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs: number, everyMs?: number): Promise<NonNullable<T>>;
}

function skipReason(): string | false {
  if (!process.env.WATTSPLIT_TEST_KAFKA) return 'WATTSPLIT_TEST_KAFKA not set (no Kafka on this machine: node scripts/services.mjs up)';
  if (!process.env.WATTSPLIT_TEST_CLICKHOUSE_URL) return 'WATTSPLIT_TEST_CLICKHOUSE_URL not set (no ClickHouse server on this machine)';
  return false;
}

/** The JSON log lines of `p` (partial lines left out). */
function logLines(p: Proc): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of p.log().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a partial line */
    }
  }
  return out;
}

async function scrape(url: string): Promise<Record<string, number>> {
  const r = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) });
  const out: Record<string, number> = {};
  for (const line of (await r.text()).split('\n')) {
    const m = /^([a-z_]+)(\{.*\})?\s+(\S+)$/.exec(line);
    if (m) out[`${m[1]}${m[2] ?? ''}`] = Number(m[3]);
  }
  return out;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
const msgOf = (l: Record<string, unknown>): string => (typeof l.msg === 'string' ? l.msg : '');

test('the collector process pauses its training while ingest is behind (stopped 8 s while frames keep coming) and resumes when it caught up; both classes still get a model', { skip: skipReason(), timeout: 300_000 }, async (t) => {
  const P = (await import(pathToFileURL(join(root, 'scripts/lib/processes.mjs')).href)) as Processes;
  const ch = process.env.WATTSPLIT_TEST_CLICKHOUSE_URL!;
  const runId = `${process.pid}${Date.now().toString(36)}`;
  const broker = `training-yield-${runId}`;
  const db = `training_yield_${runId}`;
  const logDir = mkdtempSync(join(tmpdir(), 'wattsplit-training-yield-'));
  let failed = true;
  t.after(async () => {
    P.killAllNow();
    P.script('kafka.sh', ['stop', broker], 40);
    if (failed) {
      process.stderr.write(`training-yield: logs kept in ${logDir}, database ${db}\n`);
      return;
    }
    await P.chQuery(ch, '', `DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
    rmSync(logDir, { recursive: true, force: true });
  });
  const k = P.script('kafka.sh', ['start', broker], 150);
  if (!k.ok || !/^127\.0\.0\.1:\d+$/.test(k.out ?? '')) {
    t.skip(`Kafka could not start: ${k.why ?? k.out}`);
    return;
  }
  const env = { WATTSPLIT_KAFKA_BROKERS: k.out!, WATTSPLIT_KAFKA_PARTITIONS: '4', WATTSPLIT_KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const q = (sql: string) => P.chQuery(ch, db, sql);

  const gw = new P.Proc('gateway', process.execPath, [CLI, 'gateway', '--host', '127.0.0.1', '--port', '0', '--log-level', 'info'], { env, logDir });
  const gl = await P.waitFor('the gateway listening', () => logLines(gw).find((l) => msgOf(l) === 'gateway listening'), 120_000);
  const collector = new P.Proc('collector', process.execPath, [
    CLI, 'collector', '--url', ch, '--database', db, '--http-port', '0', '--group', `training-yield-${runId}`, '--log-level', 'info',
    '--train-check-s', '1', '--train-min-intervals', '30', '--drift-ratio', '100', '--train-yield-above-s', '3', '--train-max-pause-s', '60',
  ], { env, logDir });
  const cl = await P.waitFor('the collector running', () => logLines(collector).find((l) => msgOf(l) === 'collector running'), 120_000);
  const url = str(cl.url);

  // 2 hosts of 2 hardware classes; after a 60 s warm-up sent as fast as acked, the agents follow the wall clock (1 frame/s each).
  const agents = new P.Proc('agents', process.execPath, [
    CLI, 'fleet-sim', '--gateway', `127.0.0.1:${str(gl.port)}`, '--spool-dir', join(logDir, 'spool'), '--hosts', '2', '--vms', '6', '--seed', '5', '--warmup-s', '60', '--billed-s', '600', '--run-id', runId, '--log-level', 'warn',
  ], { logDir, stdio: ['ipc'] });
  const inbox: { type: string; hosts?: { hostId: string; hardwareClass: string }[] }[] = [];
  agents.child.on('message', (m: { type: string }) => void (m.type !== 'progress' && inbox.push(m)));
  const ready = await P.waitFor('the agents ready', () => inbox.find((m) => m.type === 'ready'), 60_000, 100);
  const classes = [...new Set((ready.hosts ?? []).map((h) => h.hardwareClass))].sort();
  assert.equal(classes.length, 2, 'two hardware classes');
  agents.child.send({ op: 'warmup' });

  // Training under way (a class's lease taken by the collector): stop the whole process for 8 s.
  const pid = collector.child.pid!;
  await P.waitFor('the collector training', async () => (await q(`SELECT name FROM model_leases WHERE holder LIKE '%:${pid}:%' AND expires_at_ms > taken_at_ms`).catch(() => []))[0], 90_000, 100);
  process.kill(pid, 'SIGSTOP');
  await P.sleep(8000);
  process.kill(pid, 'SIGCONT');

  const paused = await P.waitFor('the training paused', () => logLines(collector).find((l) => /^ingest is .* behind .*: training pauses$/.test(msgOf(l))), 30_000);
  assert.ok(Number(paused.ingestDelayS) > 3, `delay ${str(paused.ingestDelayS)} s`);
  await P.waitFor('the training resumed', () => logLines(collector).find((l) => msgOf(l).endsWith('training resumes')), 60_000);
  // Both classes trained (the models still come), and ingest kept up: every host stored up to a frame sent after the stop.
  await P.waitFor('v1 of both classes', async () => {
    const m = await scrape(url);
    return classes.every((c) => m[`wattsplit_model_version{hardware_class="${c}"}`] === 1);
  }, 150_000, 500);
  const m = await scrape(url);
  assert.equal(m['wattsplit_training_yield_threshold_seconds'], 3, 'the flag is the threshold');
  assert.ok((m['wattsplit_training_pauses_total'] ?? 0) >= 1, `pauses ${m['wattsplit_training_pauses_total']}`);
  assert.ok((m['wattsplit_training_paused_seconds_total'] ?? 0) > 0, `paused ${m['wattsplit_training_paused_seconds_total']} s`);
  assert.ok(Number.isFinite(m['wattsplit_collector_ingest_delay_seconds']), 'the ingest delay is exposed');
  const nowMs = Date.now();
  await P.waitFor('ingest caught up', async () => {
    const rows = await q(`SELECT host, max(t1_ns) AS t FROM host_samples GROUP BY host`);
    return rows.length === 2 && rows.every((r) => Number(r.t) / 1e6 > nowMs - 10_000);
  }, 30_000, 500);
  assert.ok(collector.alive, 'the collector is still running');
  failed = false;
});
