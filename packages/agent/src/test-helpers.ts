/** Shared helpers for this package's tests (compiled, not exported from the index). */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostFs } from '@wattsplit/wire';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-fixtures');

/** A private copy of a fixture tree that the test may modify; removed by the returned cleanup. */
export function copyFixture(name: string): { root: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), `wattsplit-agent-${name}-`));
  cpSync(join(FIXTURES, name), root, { recursive: true });
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `wattsplit-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A HostFs wrapper that throws a Node system error for chosen paths (EACCES as for non-root on energy_uj). */
export class FaultyHostFs implements HostFs {
  constructor(
    private readonly inner: HostFs,
    private readonly faults: Map<string, string>,
  ) {}

  private check(path: string): void {
    for (const [p, code] of this.faults) {
      if (path === p || path.startsWith(`${p}/`)) {
        const e = new Error(`${code}: simulated, open '${path}'`) as NodeJS.ErrnoException;
        e.code = code;
        e.path = path;
        throw e;
      }
    }
  }

  readText(path: string): string {
    this.check(path);
    return this.inner.readText(path);
  }

  readDir(path: string): string[] {
    this.check(path);
    return this.inner.readDir(path);
  }

  exists(path: string): boolean {
    return this.inner.exists(path);
  }
}

export function fakeClock(startNs = 1_000_000_000, wallStartNs = 1_700_000_000_000_000_000): { monoNs: () => number; wallUnixNs: () => number; advance: (ms: number) => void } {
  let mono = startNs;
  let wall = wallStartNs;
  return {
    monoNs: () => mono,
    wallUnixNs: () => wall,
    advance: (ms: number) => {
      mono += ms * 1e6;
      wall += ms * 1e6;
    },
  };
}

import * as grpc from '@grpc/grpc-js';
import { AckStatus, TELEMETRY_INGEST_SERVICE, type FrameBatch, type IBatchAck, type ITelemetryFrame } from '@wattsplit/wire';

export interface TestIngestServer {
  port: number;
  /** Frames received in batches the server acked OK, in arrival order. */
  frames: ITelemetryFrame[];
  batches: FrameBatch[];
  authHeaders: string[];
  stop(): Promise<void>;
}

/**
 * A tiny real gRPC server implementing TELEMETRY_INGEST_SERVICE on 127.0.0.1: acks every batch OK
 * (or as `decide` says), recording what it accepted.
 */
export async function startIngestServer(opts: {
  port?: number;
  credentials?: grpc.ServerCredentials;
  decide?: (b: FrameBatch, md: grpc.Metadata) => Partial<IBatchAck>;
} = {}): Promise<TestIngestServer> {
  const server = new grpc.Server();
  const rec: TestIngestServer = { port: 0, frames: [], batches: [], authHeaders: [], stop: async () => undefined };
  server.addService(TELEMETRY_INGEST_SERVICE, {
    ingest: (call: grpc.ServerDuplexStream<FrameBatch, IBatchAck>) => {
      const auth = call.metadata.get('authorization')[0];
      rec.authHeaders.push(typeof auth === 'string' ? auth : '');
      call.on('data', (b: FrameBatch) => {
        const d = opts.decide?.(b, call.metadata) ?? {};
        const ack: IBatchAck = { batchId: b.batchId, status: AckStatus.ACK_STATUS_OK, accepted: b.frames.length, ...d };
        if (ack.status === AckStatus.ACK_STATUS_OK) {
          rec.batches.push(b);
          rec.frames.push(...b.frames);
        }
        call.write(ack);
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${opts.port ?? 0}`, opts.credentials ?? grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p)));
  });
  rec.port = port;
  rec.stop = () =>
    new Promise<void>((resolve) => {
      server.forceShutdown();
      resolve();
    });
  return rec;
}

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

/** A self-signed certificate for 127.0.0.1 / localhost made with the openssl CLI, or undefined without it. */
export function selfSignedCert(dir: string, cn = 'wattsplit-test'): { certFile: string; keyFile: string; cert: Buffer; key: Buffer } | undefined {
  const certFile = join(dir, `${cn}.crt`);
  const keyFile = join(dir, `${cn}.key`);
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

/** A CA and two certificates it signed (server for 127.0.0.1/localhost, client), via the openssl CLI. */
export function testPki(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } | undefined {
  const run = (args: string[]) => spawnSync('openssl', args, { encoding: 'utf8', cwd: dir }).status === 0;
  const ext = join(dir, 'san.cnf');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const ok =
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=wattsplit-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt']) &&
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=gateway', '-keyout', 'server.key', '-out', 'server.csr']) &&
    run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', 'server.crt']) &&
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=hv-01', '-keyout', 'client.key', '-out', 'client.csr']) &&
    run(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'client.crt']);
  if (!ok) return undefined;
  return { ca: join(dir, 'ca.crt'), serverCert: join(dir, 'server.crt'), serverKey: join(dir, 'server.key'), clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') };
}
