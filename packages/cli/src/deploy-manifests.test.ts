// The command lines the deploy files ship (compose, plain Kubernetes manifests, the Dockerfile's default CMDs) pass
// the same checks `wattsplit collector` and `wattsplit gateway` apply at start, and a port the file publishes, probes
// or exposes is one the process serves beyond its own loopback. Found by an outside audit (2026-12-07): the compose
// and Kubernetes collectors bound 127.0.0.1 inside their containers (published ports and probes reached nothing) and
// the gateway image's default CMD exited 2 (`--auth none` on 0.0.0.0). The Helm chart is rendered and validated in
// helm-chart.int.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWattsplitError } from '@wattsplit/wire';
import { settings as collectorSettings } from './commands/collector.js';
import { gatewaySettings } from './commands/gateway.js';
import { REPO_ROOT } from './agent-artefact.fixture.js';

interface Invocation {
  file: string;
  /** where in the file (the service, container or build target) */
  where: string;
  command: 'collector' | 'gateway';
  args: string[];
  /** the file publishes, probes or exposes the process's HTTP (collector) or gRPC (gateway) port */
  reachedFromOutside: boolean;
}

/** The JSON string array starting at `from` (one or several lines), as the files write their command lines. */
function arrayAt(text: string, from: number): string[] {
  const open = text.indexOf('[', from);
  const close = text.indexOf(']', open);
  return JSON.parse(text.slice(open, close + 1)) as string[];
}

function compose(): Invocation[] {
  const file = 'deploy/compose/docker-compose.yml';
  const text = readFileSync(join(REPO_ROOT, file), 'utf8');
  const out: Invocation[] = [];
  // services are the two-space-indented keys; each wattsplit one has a `command:` array
  const services = [...text.matchAll(/^ {2}([\w-]+):\n([\s\S]*?)(?=^ {2}[\w-]+:\n|^\S|$(?![\s\S]))/gm)];
  for (const [, name, body] of services) {
    const at = body!.search(/^ {4}command: \[/m);
    if (at < 0) continue;
    const argv = arrayAt(body!, at);
    const command = argv[0];
    if (command !== 'collector' && command !== 'gateway') continue;
    out.push({ file, where: `service ${name}`, command, args: argv.slice(1), reachedFromOutside: /^ {4}ports: \[/m.test(body!) });
  }
  return out;
}

function k8s(): Invocation[] {
  const out: Invocation[] = [];
  for (const f of ['collector.yaml', 'gateway.yaml']) {
    const file = `deploy/k8s/${f}`;
    const text = readFileSync(join(REPO_ROOT, file), 'utf8');
    for (const doc of text.split(/^---$/m)) {
      if (!/^kind: Deployment$/m.test(doc)) continue;
      const at = doc.search(/^ +args: \[/m);
      assert.ok(at >= 0, `${file}: a Deployment without an args array`);
      const argv = arrayAt(doc, at);
      const command = argv[0];
      assert.ok(command === 'collector' || command === 'gateway', `${file}: args start with ${command}`);
      // containerPort with probes and a Service in front of it
      out.push({ file, where: `Deployment ${/^ {2}name: (\S+)$/m.exec(doc)?.[1] ?? '?'}`, command, args: argv.slice(1), reachedFromOutside: /containerPort:/.test(doc) });
    }
  }
  return out;
}

function dockerfile(): Invocation[] {
  const file = 'deploy/docker/Dockerfile';
  const text = readFileSync(join(REPO_ROOT, file), 'utf8');
  const out: Invocation[] = [];
  for (const stage of text.split(/^FROM /m).slice(1)) {
    const target = /^\S+ AS (\S+)/.exec(stage)?.[1];
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(stage);
    const cmd = /^CMD (\[.*\])$/m.exec(stage);
    if (!entry || !cmd) continue;
    const command = (JSON.parse(entry[1]!) as string[]).at(-1);
    if (command !== 'collector' && command !== 'gateway') continue;
    out.push({ file, where: `target ${target ?? '?'}`, command, args: JSON.parse(cmd[1]!) as string[], reachedFromOutside: /^EXPOSE /m.test(stage) });
  }
  return out;
}

/** The files the command line names under /etc/wattsplit, made here with valid contents (the checks read them). */
function withFiles(args: string[], dir: string): string[] {
  return args.map((a) => {
    if (!a.startsWith('/etc/wattsplit/')) return a;
    const local = join(dir, a.slice('/etc/wattsplit/'.length).replace(/\//g, '_'));
    writeFileSync(local, a.endsWith('tokens') ? `admin ${'a'.repeat(40)} ops\nmetrics ${'m'.repeat(40)} prometheus\n` : 'placeholder\n');
    return local;
  });
}

const loopback = (host: string): boolean => host === 'localhost' || host === '::1' || host.startsWith('127.');

test('the deploy files ship collector and gateway command lines that start, and serve the ports they publish beyond loopback', () => {
  const all = [...compose(), ...k8s(), ...dockerfile()];
  // what the files hold today: a test that finds none would pass on nothing
  assert.deepEqual(
    all.map((i) => `${i.file} ${i.where}: ${i.command}`).sort(),
    [
      'deploy/compose/docker-compose.yml service collector-1: collector',
      'deploy/compose/docker-compose.yml service collector-2: collector',
      'deploy/compose/docker-compose.yml service gateway: gateway',
      'deploy/docker/Dockerfile target collector: collector',
      'deploy/docker/Dockerfile target gateway: gateway',
      'deploy/k8s/collector.yaml Deployment wattsplit-collector: collector',
      'deploy/k8s/gateway.yaml Deployment wattsplit-gateway: gateway',
    ],
  );
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-deploy-'));
  try {
    for (const inv of all) {
      const what = `${inv.file} (${inv.where}): wattsplit ${inv.command} ${inv.args.join(' ')}`;
      const args = withFiles(inv.args, dir);
      let host: string;
      try {
        if (inv.command === 'collector') {
          const s = collectorSettings([...args, '--log-level', 'error']);
          assert.notEqual(s, 'help', what);
          host = s === 'help' ? '' : (s.http.host ?? '127.0.0.1');
        } else {
          const s = gatewaySettings([...args, '--log-level', 'error']);
          assert.notEqual(s, 'help', what);
          host = s === 'help' ? '' : s.host;
        }
      } catch (e) {
        assert.fail(`${what} is refused at start: ${isWattsplitError(e) ? `${e.code}: ${e.message}` : String(e)}`);
      }
      if (inv.reachedFromOutside) assert.ok(!loopback(host), `${what}: the file publishes its port but the process binds ${host}, which nothing outside its container reaches`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the checks the deploy test relies on refuse what they should (the test would catch the audit\'s two findings)', () => {
  // the collector's old compose/k8s command line: starts, but on loopback
  const s = collectorSettings(['--database', 'wattsplit', '--http-port', '8080', '--log-level', 'error']);
  assert.ok(s !== 'help' && loopback(s.http.host ?? '127.0.0.1'));
  // the gateway image's old default CMD: refused
  assert.throws(() => gatewaySettings(['--host', '0.0.0.0', '--port', '7443', '--log-level', 'error']), (e: unknown) => isWattsplitError(e, 'CONFIG_INVALID') && /--auth none on --host 0\.0\.0\.0/.test(e.message));
  // a network bind without tokens: refused
  assert.throws(() => collectorSettings(['--http-host', '0.0.0.0', '--log-level', 'error']), (e: unknown) => isWattsplitError(e, 'CONFIG_INVALID') && /--http-host=0\.0\.0\.0/.test(e.message));
});
