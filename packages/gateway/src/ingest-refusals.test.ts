import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AckStatus, InProcessBus, WattsplitError, decodeBatch, encodeBatch, memoryLogger } from '@wattsplit/wire';
import { IngestPipeline, peerAddress } from './ingest-pipeline.js';
import { newGatewayMetrics } from './metrics.js';

test('peerAddress leaves the port out of grpc-js and socket peers, and keeps what has none', () => {
  assert.equal(peerAddress('ipv4:10.0.0.7:53122'), 'ipv4:10.0.0.7');
  assert.equal(peerAddress('ipv6:[::1]:5'), 'ipv6:[::1]');
  assert.equal(peerAddress('10.0.0.7:1'), '10.0.0.7');
  assert.equal(peerAddress('unix:/run/x.sock'), 'unix:/run/x.sock');
  assert.equal(peerAddress(undefined), '');
});

test('batches refused for their token: one warning per peer address per 30 s, the rest at debug and all counted; another address warns on its own', async () => {
  const log = memoryLogger();
  const metrics = newGatewayMetrics();
  const bus = new InProcessBus();
  const pipeline = new IngestPipeline({ producer: bus.producer(), metrics, logger: log, auth: { mode: 'per-host', tokens: { 'hv-1': 'tok-1' } } });
  const bytes = encodeBatch({ batchId: 1, frames: [] });
  const refuse = (peer: string) => pipeline.process({ batch: decodeBatch(bytes), bytes: bytes.length, authorization: 'Bearer wrong', peer });
  for (let i = 0; i < 5; i++) assert.equal((await refuse(`ipv4:10.0.0.7:${40000 + i}`)).status, AckStatus.ACK_STATUS_REJECTED);
  await refuse('ipv4:10.0.0.8:40000');
  pipeline.undecodable(new WattsplitError('FRAME_DECODE_FAILED', 'not a FrameBatch'), 10, 'ipv4:10.0.0.7:40009');
  pipeline.undecodable(new WattsplitError('FRAME_DECODE_FAILED', 'not a FrameBatch'), 10, 'ipv4:10.0.0.7:40010');
  const auth = log.entries.filter((e) => e.fields.code === 'FRAME_AUTH_FAILED');
  assert.deepEqual(auth.filter((e) => e.level === 'warn').map((e) => e.fields.peer), ['ipv4:10.0.0.7:40000', 'ipv4:10.0.0.8:40000']);
  assert.equal(auth.filter((e) => e.level === 'debug' && e.fields.heldBack === true).length, 4);
  const undecodable = log.entries.filter((e) => e.fields.code === 'FRAME_DECODE_FAILED');
  assert.deepEqual(undecodable.map((e) => e.level), ['warn', 'debug'], 'a code of its own: the decode failure warns once too');
  assert.equal(metrics.authFailures, 6);
  await bus.close();
});
