// The shipped agent (`wattsplit agent`, its real pino logger and flags) outlives every send failure the
// spool exists for: a gateway that is not there, and a gateway that refuses the host's token. It once
// died on its first retryable send (a logger method called unbound), which library tests with a
// `this`-free test logger could not see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway } from '@wattsplit/gateway';
import { InProcessBus } from '@wattsplit/wire';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');

/** A loopback port nothing listens on (bound by the OS, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startAgent(args: string[]): Running {
  const child = spawn(process.execPath, [main, 'agent', '--no-nvml', '--no-perf', '--no-libvirt', '--interval-ms', '200', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return { child, output: () => out, exited };
}

async function waitFor(what: string, cond: () => boolean, r: Running, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (r.child.exitCode !== null) assert.fail(`agent exited (${r.child.exitCode}) while waiting for ${what}:\n${r.output().slice(-2000)}`);
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}:\n${r.output().slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function stayUpThenStop(r: Running, ms: number): Promise<void> {
  await new Promise((res) => setTimeout(res, ms));
  assert.equal(r.child.exitCode, null, `agent still running after ${ms} ms of failed sends:\n${r.output().slice(-2000)}`);
  r.child.kill('SIGTERM');
  const { code } = await r.exited;
  assert.equal(code, 0, `clean exit on SIGTERM:\n${r.output().slice(-2000)}`);
  assert.doesNotMatch(r.output(), /TypeError|uncaught|Cannot read properties/i);
}

test('wattsplit agent keeps running and spooling while its gateway is unreachable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-agent-down-'));
  const port = await closedPort();
  const r = startAgent(['--insecure', '--gateway', `127.0.0.1:${port}`, '--spool-dir', join(dir, 'spool'), '--host-id', 'hv-down', '--log-level', 'warn']);
  t.after(() => {
    r.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor('the warning that frames stay spooled', () => /send failed, frames stay spooled/.test(r.output()), r);
  const line = r.output().split('\n').find((l) => l.includes('frames stay spooled'))!;
  assert.equal((JSON.parse(line) as { level: number }).level, 40, 'a retryable send failure is a warning');
  await stayUpThenStop(r, 1500);
});

test('wattsplit agent keeps running when the gateway refuses its token, and says what the operator must fix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-agent-auth-'));
  const bus = new InProcessBus({ partitions: 1 });
  const gw = await startGateway({ producer: bus.producer(), auth: { mode: 'per-host', tokens: { 'hv-auth': 'right-token' } } });
  writeFileSync(join(dir, 'token'), 'wrong-token\n');
  const r = startAgent(['--insecure', '--gateway', gw.address, '--token-file', join(dir, 'token'), '--spool-dir', join(dir, 'spool'), '--host-id', 'hv-auth', '--log-level', 'warn']);
  t.after(async () => {
    r.child.kill('SIGKILL');
    await gw.close(0);
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor('the error naming the token', () => /fix the host token/.test(r.output()), r);
  const line = r.output().split('\n').find((l) => l.includes('fix the host token'))!;
  assert.equal((JSON.parse(line) as { level: number }).level, 50, 'an auth failure needs the operator: error level');
  const st = gw.stats();
  assert.ok(st.batches >= 1 && st.framesAccepted === 0, `the gateway saw the batches and produced none: ${JSON.stringify({ batches: st.batches, accepted: st.framesAccepted })}`);
  await stayUpThenStop(r, 1500);
});
