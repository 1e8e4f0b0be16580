/**
 * Gateway counters as a plain object (what `stats()` returns) and their Prometheus text exposition
 * (format 0.0.4: `# HELP`, `# TYPE`, one sample per line, histograms as cumulative `_bucket{le}`).
 */

/** Upper bounds, seconds, of the produce-latency histogram buckets. */
export const PRODUCE_LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export interface LatencyHistogram {
  /** Cumulative counts per bucket of PRODUCE_LATENCY_BUCKETS_S (count of observations <= bound). */
  buckets: number[];
  count: number;
  sumS: number;
}

export interface GatewayMetrics {
  /** Batches received (decoded or not). */
  batches: number;
  /** Batches by the status of their ack: ok, retry, rejected. */
  acks: { ok: number; retry: number; rejected: number };
  /** Frames produced to the bus (acked OK after the producer resolved). */
  framesAccepted: number;
  /** Frames acked OK without producing again: their seq was already produced. */
  framesDuplicate: number;
  /** Frames produced with a `wattsplit-anomaly` header (counters went backwards within a boot). */
  framesAnomalous: number;
  /** Frames rejected, by stable error code. */
  framesRejected: Record<string, number>;
  /** Protobuf bytes received in batches. */
  bytesReceived: number;
  /** Bytes of encoded frames produced to the bus. */
  bytesProduced: number;
  /** Producer send() results that were not ok. */
  produceFailures: number;
  produceLatency: LatencyHistogram;
  /** Batches received and not yet acked, and their bytes, across all streams. */
  inFlightBatches: number;
  inFlightBytes: number;
  /** Open ingest streams. */
  streams: number;
  /** Times a stream was paused because its in-flight bytes/batches were over the per-stream bound. */
  streamPauses: number;
  /** Batches answered RETRY because the global in-flight bound was exceeded. */
  backpressureRetries: number;
  /** Producer send() results that were not ok, by `transient:CODE` / `permanent:CODE`. */
  produceErrors: Record<string, number>;
  /** Batches whose token (or missing client certificate) was refused. */
  authFailures: number;
  /** Open client connections (TCP, TLS included). */
  connections: number;
  /** Connections accepted since start. */
  connectionsAccepted: number;
  /** Connections the gateway refused or closed, by reason (max_connections, pre_auth_bytes, auth_timeout, idle_timeout, handshake_timeout, tls_handshake_failed). */
  connectionsClosed: Record<string, number>;
  /** 1 while the producer is ready (gRPC health SERVING), else 0. */
  producerReady: number;
}

export function newGatewayMetrics(): GatewayMetrics {
  return {
    batches: 0,
    acks: { ok: 0, retry: 0, rejected: 0 },
    framesAccepted: 0,
    framesDuplicate: 0,
    framesAnomalous: 0,
    framesRejected: {},
    bytesReceived: 0,
    bytesProduced: 0,
    produceFailures: 0,
    produceLatency: { buckets: PRODUCE_LATENCY_BUCKETS_S.map(() => 0), count: 0, sumS: 0 },
    inFlightBatches: 0,
    inFlightBytes: 0,
    streams: 0,
    streamPauses: 0,
    backpressureRetries: 0,
    produceErrors: {},
    authFailures: 0,
    connections: 0,
    connectionsAccepted: 0,
    connectionsClosed: {},
    producerReady: 0,
  };
}

export function observeLatency(h: LatencyHistogram, seconds: number): void {
  h.count++;
  h.sumS += seconds;
  PRODUCE_LATENCY_BUCKETS_S.forEach((le, i) => {
    if (seconds <= le) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
  });
}

/** A deep copy, so callers can keep a snapshot while the gateway goes on counting. */
export function snapshotMetrics(m: GatewayMetrics): GatewayMetrics {
  return {
    ...m,
    acks: { ...m.acks },
    framesRejected: { ...m.framesRejected },
    produceErrors: { ...m.produceErrors },
    connectionsClosed: { ...m.connectionsClosed },
    produceLatency: { ...m.produceLatency, buckets: [...m.produceLatency.buckets] },
  };
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const num = (v: number): string => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN');

/**
 * Prometheus text exposition of one gateway's metrics. `labels` (e.g. `{ gateway: 'gw-1' }`) are added
 * to every sample.
 */
export function gatewayMetricsText(m: GatewayMetrics, labels: Record<string, string> = {}): string {
  const base = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`);
  const lbl = (extra: Record<string, string> = {}): string => {
    const all = [...base, ...Object.entries(extra).map(([k, v]) => `${k}="${esc(v)}"`)];
    return all.length ? `{${all.join(',')}}` : '';
  };
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string, samples: [Record<string, string>, number][], suffix = ''): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) out.push(`${name}${suffix}${lbl(l)} ${num(v)}`);
  };
  metric('wattsplit_gateway_batches_total', 'counter', 'Frame batches received on ingest streams.', [[{}, m.batches]]);
  metric('wattsplit_gateway_acks_total', 'counter', 'Batch acks sent, by status.', [
    [{ status: 'ok' }, m.acks.ok],
    [{ status: 'retry' }, m.acks.retry],
    [{ status: 'rejected' }, m.acks.rejected],
  ]);
  metric('wattsplit_gateway_frames_accepted_total', 'counter', 'Frames produced to the bus.', [[{}, m.framesAccepted]]);
  metric('wattsplit_gateway_frames_duplicate_total', 'counter', 'Frames acked without producing again (seq already produced).', [[{}, m.framesDuplicate]]);
  metric('wattsplit_gateway_frames_anomalous_total', 'counter', 'Frames produced with a wattsplit-anomaly header.', [[{}, m.framesAnomalous]]);
  metric(
    'wattsplit_gateway_frames_rejected_total',
    'counter',
    'Frames rejected, by error code.',
    Object.entries(m.framesRejected).sort(([a], [b]) => a.localeCompare(b)).map(([code, v]) => [{ code }, v]),
  );
  metric('wattsplit_gateway_received_bytes_total', 'counter', 'Protobuf bytes received in batches.', [[{}, m.bytesReceived]]);
  metric('wattsplit_gateway_produced_bytes_total', 'counter', 'Encoded frame bytes produced to the bus.', [[{}, m.bytesProduced]]);
  metric('wattsplit_gateway_produce_failures_total', 'counter', 'Producer sends that did not resolve ok.', [[{}, m.produceFailures]]);
  out.push('# HELP wattsplit_gateway_produce_latency_seconds Time from produce call to the bus acking it.', '# TYPE wattsplit_gateway_produce_latency_seconds histogram');
  PRODUCE_LATENCY_BUCKETS_S.forEach((le, i) => out.push(`wattsplit_gateway_produce_latency_seconds_bucket${lbl({ le: String(le) })} ${num(m.produceLatency.buckets[i] ?? 0)}`));
  out.push(`wattsplit_gateway_produce_latency_seconds_bucket${lbl({ le: '+Inf' })} ${num(m.produceLatency.count)}`);
  out.push(`wattsplit_gateway_produce_latency_seconds_sum${lbl()} ${num(m.produceLatency.sumS)}`);
  out.push(`wattsplit_gateway_produce_latency_seconds_count${lbl()} ${num(m.produceLatency.count)}`);
  metric('wattsplit_gateway_inflight_batches', 'gauge', 'Batches received and not yet acked.', [[{}, m.inFlightBatches]]);
  metric('wattsplit_gateway_inflight_bytes', 'gauge', 'Bytes of batches received and not yet acked.', [[{}, m.inFlightBytes]]);
  metric('wattsplit_gateway_streams', 'gauge', 'Open ingest streams.', [[{}, m.streams]]);
  metric('wattsplit_gateway_stream_pauses_total', 'counter', 'Times a stream stopped being read because of its in-flight bound.', [[{}, m.streamPauses]]);
  metric('wattsplit_gateway_backpressure_retries_total', 'counter', 'Batches answered RETRY because the global in-flight bound was exceeded.', [[{}, m.backpressureRetries]]);
  metric(
    'wattsplit_gateway_produce_errors_total',
    'counter',
    'Producer sends that did not resolve ok, by kind (transient: acked RETRY; permanent: refused for good) and error code.',
    Object.entries(m.produceErrors).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => {
      const [kind = '', code = ''] = k.split(':');
      return [{ kind, code }, v];
    }),
  );
  metric('wattsplit_gateway_auth_failures_total', 'counter', 'Batches whose token or client certificate was refused.', [[{}, m.authFailures]]);
  metric('wattsplit_gateway_connections', 'gauge', 'Open client connections.', [[{}, m.connections]]);
  metric('wattsplit_gateway_connections_accepted_total', 'counter', 'Client connections accepted.', [[{}, m.connectionsAccepted]]);
  metric(
    'wattsplit_gateway_connections_closed_total',
    'counter',
    'Connections the gateway refused or closed, by reason (max_connections, pre_auth_bytes, auth_timeout, idle_timeout, handshake_timeout, tls_handshake_failed).',
    Object.entries(m.connectionsClosed).sort(([a], [b]) => a.localeCompare(b)).map(([reason, v]) => [{ reason }, v]),
  );
  metric(
    'wattsplit_gateway_timeouts_total',
    'counter',
    'Connections closed by a timeout, by kind (handshake, auth, idle).',
    (['handshake', 'auth', 'idle'] as const).map((kind) => [{ kind }, m.connectionsClosed[`${kind}_timeout`] ?? 0]),
  );
  metric('wattsplit_gateway_producer_ready', 'gauge', '1 while the bus producer is ready (gRPC health SERVING).', [[{}, m.producerReady]]);
  return out.join('\n') + '\n';
}
