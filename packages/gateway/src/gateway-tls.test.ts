import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AckStatus, InProcessBus, WattsplitError, memoryLogger } from '@wattsplit/wire';
import { http2StreamOf, startGateway } from './index.js';
import { frame, openStream } from './test-helpers.js';
import { makeTestPki as makePki } from './test-pki.js';

test('mTLS: a client with a CA-signed certificate is served; one without a certificate is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-gw-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki(dir);
  const bus = new InProcessBus();
  const gw = await startGateway({ producer: bus.producer(), tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca } });
  const ca = readFileSync(pki.ca);
  const good = openStream(gw.address, { credentials: grpc.credentials.createSsl(ca, readFileSync(pki.clientKey), readFileSync(pki.clientCert)) });
  t.after(async () => {
    await good.end();
    await gw.close(500);
  });
  const a = await good.send({ batchId: 1, frames: [frame('hv-tls', 1)] });
  assert.equal(a.status, AckStatus.ACK_STATUS_OK);
  const anonymous = openStream(gw.address, { credentials: grpc.credentials.createSsl(ca) });
  await assert.rejects(anonymous.send({ batchId: 1, frames: [frame('hv-tls', 2)] }), /stream ended before ack: 14 /);
  await anonymous.end();
  assert.equal(gw.stats().framesAccepted, 1);
});

test('TLS: a file that is not PEM is refused naming the option and the path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-gw-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, 'not a certificate');
  const bus = new InProcessBus();
  await assert.rejects(
    startGateway({ producer: bus.producer(), tls: { certFile: junk, keyFile: junk } }),
    (e) => e instanceof WattsplitError && e.code === 'CONFIG_INVALID' && e.message === `gateway tls.certFile=${JSON.stringify(junk)}: no PEM block (-----BEGIN ...) in the file`,
  );
});

test('auth mode client-cert: the certificate CN is the host; frames of another host are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-gw-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki(dir);
  const bus = new InProcessBus();
  const gw = await startGateway({ producer: bus.producer(), auth: { mode: 'client-cert' }, tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca } });
  const s = openStream(gw.address, { credentials: grpc.credentials.createSsl(readFileSync(pki.ca), readFileSync(pki.clientKey), readFileSync(pki.clientCert)) });
  t.after(async () => {
    await s.end();
    await gw.close(500);
  });
  const a = await s.send({ batchId: 1, frames: [frame('hv-tls', 1), frame('hv-other', 1)] });
  assert.equal(a.status, AckStatus.ACK_STATUS_OK);
  assert.equal(a.accepted, 1);
  assert.equal(a.rejections[0]!.code, 'FRAME_AUTH_FAILED');
  assert.match(a.rejections[0]!.message ?? '', /host_id="hv-other" is not the host this client certificate belongs to \("hv-tls"\)/);
  await assert.rejects(startGateway({ producer: bus.producer(), auth: { mode: 'client-cert' } }), /auth\.mode="client-cert" needs tls\.caFile/);
});

test('TLS: an unauthenticated stream that floods an unfinished message is cut within its first flow-control window (TLS records counted), the per-chunk check armed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wattsplit-gw-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki(dir);
  const bus = new InProcessBus();
  const logger = memoryLogger();
  const gw = await startGateway({ producer: bus.producer(), logger, auth: { mode: 'shared', token: 'fleet' }, tls: { certFile: pki.serverCert, keyFile: pki.serverKey } });
  t.after(() => gw.close(500));
  const s = http2.connect(`https://127.0.0.1:${gw.port}`, { ca: readFileSync(pki.ca) });
  s.on('error', () => undefined);
  const closed = new Promise<void>((r) => s.on('close', () => r()));
  const req = s.request({ ':method': 'POST', ':path': '/wattsplit.telemetry.v1.TelemetryIngest/Ingest', 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => undefined);
  const hdr = Buffer.alloc(5);
  hdr.writeUInt32BE(8 * 1024 * 1024 - 1, 1);
  req.write(hdr);
  req.write(randomBytes(4 * 1024 * 1024));
  await closed;
  assert.equal(gw.stats().connectionsClosed.pre_auth_bytes, 1);
  const cut = logger.entries.filter((e) => e.fields.reason === 'pre_auth_bytes');
  assert.equal(cut.length, 1);
  const read = Number(cut[0]!.fields.bytesRead);
  assert.ok(read > 64 * 1024 && read < 1024 * 1024, `cut after ${read} bytes (TLS records included)`);
  assert.ok(!logger.entries.some((e) => /not reachable from a call/.test(e.msg)), 'the per-chunk check is armed');
});

test('http2StreamOf finds no stream in a call shaped unlike grpc-js 1.14 (the gateway then falls back to the sweep)', () => {
  assert.equal(http2StreamOf({}), undefined);
  assert.equal(http2StreamOf(undefined), undefined);
  assert.equal(http2StreamOf({ call: { nextCall: { nextCall: {} } } }), undefined);
  const stream = Object.assign(new EventEmitter(), { session: {} });
  assert.equal(http2StreamOf({ call: { nextCall: { stream } } }), stream);
});
