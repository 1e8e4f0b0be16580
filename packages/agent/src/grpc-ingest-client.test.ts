import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { isWattsplitError, memoryLogger } from '@wattsplit/wire';
import { GrpcIngestClient, ingestCredentials } from './grpc-ingest-client.js';
import { startIngestServer, tempDir, testPki } from './test-helpers.js';

const frame = (seq: number) => ({ hostId: 'hv-01', seq, bootId: 'b', monoNs: 1, wallUnixNs: 1 });

test('mTLS: the client presents its certificate and verifies the gateway against the CA', async (t) => {
  const { dir, cleanup } = tempDir('pki');
  t.after(cleanup);
  const pki = testPki(dir);
  if (!pki) return t.skip('openssl CLI not available');
  const creds = grpc.ServerCredentials.createSsl(readFileSync(pki.ca), [{ cert_chain: readFileSync(pki.serverCert), private_key: readFileSync(pki.serverKey) }], true);
  const srv = await startIngestServer({ credentials: creds });
  t.after(() => srv.stop());
  const ok = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey }, token: 'tk', logger: memoryLogger() });
  t.after(() => ok.close());
  assert.deepEqual(await ok.send({ batchId: 1, frames: [frame(1)] }), { kind: 'ok' });
  assert.equal(srv.frames.length, 1);
  assert.equal(srv.batches[0]?.token, 'tk');
  // without a client certificate the handshake fails: retryable, frames stay with the caller
  const noCert = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: { caFile: pki.ca }, logger: memoryLogger(), ackTimeoutMs: 5000 });
  t.after(() => noCert.close());
  const r = await noCert.send({ batchId: 1, frames: [frame(2)] });
  assert.equal(r.kind, 'retryable');
  // a gateway certificate not signed by the configured CA is refused
  const wrongCa = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: { caFile: pki.clientCert, certFile: pki.clientCert, keyFile: pki.clientKey }, logger: memoryLogger(), ackTimeoutMs: 5000 });
  t.after(() => wrongCa.close());
  assert.equal((await wrongCa.send({ batchId: 1, frames: [frame(3)] })).kind, 'retryable');
  assert.equal(srv.frames.length, 1, 'nothing arrived through a failed handshake');
});

test('TLS options are checked: half an mTLS pair or an unreadable file is a CONFIG_INVALID naming it', () => {
  assert.throws(() => ingestCredentials({ certFile: '/x.crt' }), (e) => isWattsplitError(e, 'CONFIG_INVALID') && /mTLS needs both certFile and keyFile/.test(e.message));
  assert.throws(() => ingestCredentials({ caFile: '/nonexistent/ca.pem' }), /tls\.caFile file \/nonexistent\/ca\.pem unreadable/);
});

test('gateway unreachable: retryable with a growing back-off, never throws', async () => {
  const c = new GrpcIngestClient({ address: '127.0.0.1:1', tls: false, logger: memoryLogger(), backoffBaseMs: 100, backoffCapMs: 10_000 });
  const waits: number[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await c.send({ batchId: i + 1, frames: [frame(i + 1)] });
    assert.equal(r.kind, 'retryable');
    if (r.kind === 'retryable') {
      waits.push(r.afterMs);
      assert.equal(r.error.code, 'TRANSPORT_UNAVAILABLE');
      assert.match(r.error.message, /ingest stream to 127\.0\.0\.1:1 failed/);
    }
  }
  assert.ok(waits[3]! >= 400 && waits[3]! <= 800, `4th back-off in [400, 800]: ${waits.join(',')}`);
  await c.close();
});

test('unauthenticated: the gRPC status is an auth error kept for slow retry (frames are not dropped)', async (t) => {
  // a server that ends every stream with UNAUTHENTICATED
  const server = new grpc.Server();
  const { TELEMETRY_INGEST_SERVICE } = await import('@wattsplit/wire');
  server.addService(TELEMETRY_INGEST_SERVICE, {
    ingest: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'bad token' }),
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  t.after(() => server.forceShutdown());
  const c = new GrpcIngestClient({ address: `127.0.0.1:${port}`, tls: false, token: 'bad', logger: memoryLogger() });
  t.after(() => c.close());
  const r = await c.send({ batchId: 1, frames: [frame(1)] });
  assert.equal(r.kind, 'retryable');
  if (r.kind === 'retryable') {
    assert.equal(r.error.code, 'FRAME_AUTH_FAILED');
    assert.match(r.error.message, /bad token/);
    assert.ok(r.afterMs >= 30_000);
  }
});

test('REJECTED acks: auth / unknown host keep the frames (slow retry), a bad batch is failed (dropped by the sender)', async (t) => {
  const { AckStatus } = await import('@wattsplit/wire');
  let reply = 'FRAME_AUTH_FAILED: batch refused: token belongs to no known host';
  const srv = await startIngestServer({ decide: () => ({ status: AckStatus.ACK_STATUS_REJECTED, message: reply }) });
  t.after(() => srv.stop());
  const c = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: false, logger: memoryLogger() });
  t.after(() => c.close());
  const a = await c.send({ batchId: 1, frames: [frame(1)] });
  assert.equal(a.kind, 'retryable');
  if (a.kind === 'retryable') {
    assert.equal(a.error.code, 'FRAME_AUTH_FAILED');
    assert.ok(a.afterMs >= 30_000);
  }
  reply = 'FRAME_UNKNOWN_HOST: host hv-01 is not allowed';
  assert.equal((await c.send({ batchId: 2, frames: [frame(2)] })).kind, 'retryable');
  reply = 'FRAME_DECODE_FAILED: not a FrameBatch';
  const b = await c.send({ batchId: 3, frames: [frame(3)] });
  assert.equal(b.kind, 'failed');
  if (b.kind === 'failed') assert.equal(b.error.code, 'FRAME_DECODE_FAILED');
});

/** A bare HTTP/2 server on 127.0.0.1 that answers the Ingest call as `respond` says (no grpc-js). */
async function rawHttp2Server(respond: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer();
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  server.on('stream', (stream, headers) => respond(stream, headers));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sessions) s.destroy();
      }),
  };
}

test('the call over node:http2: headers and Length-Prefixed-Messages as PROTOCOL-HTTP2.md says, an ack split over many DATA frames, grpc-message percent-decoded, HTTP statuses mapped', async (t) => {
  const { AckStatus, BatchAck, FrameBatch } = await import('@wattsplit/wire');
  let mode: 'ok' | 'trailers' | '401' | '503' = 'ok';
  const seen: Array<Record<string, unknown>> = [];
  const srv = await rawHttp2Server((stream, h) => {
    seen.push({ ...h });
    if (mode === '401' || mode === '503') {
      stream.respond({ ':status': Number(mode) }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '14', 'grpc-message': 'gateway%20draining%3A%20bye' }));
    let buf = Buffer.alloc(0);
    stream.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        assert.equal(buf[0], 0, 'not compressed');
        const batch = FrameBatch.decode(buf.subarray(5, 5 + buf.readUInt32BE(1)));
        buf = buf.subarray(5 + buf.readUInt32BE(1));
        if (mode === 'trailers') {
          stream.end();
          return;
        }
        const ack = BatchAck.encode({ batchId: batch.batchId, status: AckStatus.ACK_STATUS_OK, accepted: batch.frames.length }).finish();
        const msg = Buffer.concat([Buffer.from([0, 0, 0, 0, ack.length]), ack]);
        // one byte per DATA frame: the client reassembles the message
        for (const byte of msg) stream.write(Buffer.from([byte]));
      }
    });
  });
  t.after(() => srv.close());
  const c = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: false, token: 'tok', logger: memoryLogger(), backoffBaseMs: 10, backoffCapMs: 20 });
  t.after(() => c.close());
  assert.deepEqual(await c.send({ batchId: 1, frames: [frame(1)] }), { kind: 'ok' });
  assert.deepEqual(await c.send({ batchId: 2, frames: [frame(2), frame(3)] }), { kind: 'ok' });
  const h = seen[0]!;
  assert.equal(h[':method'], 'POST');
  assert.equal(h[':path'], '/wattsplit.telemetry.v1.TelemetryIngest/Ingest');
  assert.equal(h['content-type'], 'application/grpc');
  assert.equal(h.te, 'trailers');
  assert.equal(h.authorization, 'Bearer tok');
  assert.equal(seen.length, 1, 'both batches on one stream');
  mode = 'trailers';
  const r = await c.send({ batchId: 3, frames: [frame(4)] });
  assert.equal(r.kind, 'retryable');
  if (r.kind === 'retryable') {
    assert.equal(r.error.code, 'TRANSPORT_UNAVAILABLE');
    assert.match(r.error.message, /failed: gateway draining: bye/);
  }
  mode = '401';
  const u = await c.send({ batchId: 4, frames: [frame(5)] });
  assert.equal(u.kind, 'retryable');
  if (u.kind === 'retryable') {
    assert.equal(u.error.code, 'FRAME_AUTH_FAILED', 'HTTP 401 is UNAUTHENTICATED');
    assert.ok(u.afterMs >= 30_000);
  }
  mode = '503';
  const v = await c.send({ batchId: 5, frames: [frame(6)] });
  assert.equal(v.kind, 'retryable');
  if (v.kind === 'retryable') {
    assert.equal(v.error.code, 'TRANSPORT_UNAVAILABLE', 'HTTP 503 is UNAVAILABLE');
    assert.match(v.error.message, /HTTP status 503/);
  }
});

test('an ack that never comes: TRANSPORT_TIMEOUT after ackTimeoutMs, the call cancelled, the next send opens a new one', async (t) => {
  let calls = 0;
  const srv = await rawHttp2Server((stream) => {
    calls++;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
  });
  t.after(() => srv.close());
  const c = new GrpcIngestClient({ address: `127.0.0.1:${srv.port}`, tls: false, logger: memoryLogger(), ackTimeoutMs: 200 });
  t.after(() => c.close());
  const r = await c.send({ batchId: 1, frames: [frame(1)] });
  assert.equal(r.kind, 'retryable');
  if (r.kind === 'retryable') assert.equal(r.error.code, 'TRANSPORT_TIMEOUT');
  await c.send({ batchId: 2, frames: [frame(2)] });
  assert.equal(calls, 2);
});
