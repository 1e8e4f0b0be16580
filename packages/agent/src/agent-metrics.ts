/**
 * The agent's Prometheus families (text exposition 0.0.4), served by `wattsplit agent --metrics-port`
 * (off by default, loopback by default) beside prom-client's process_* / nodejs_* defaults and
 * wattsplit_build_info{role="agent"}.
 *
 * Bounded by design: no family has a per-VM or per-counter label. A host exposes the same ~25 series
 * whether it runs 1 VM or 500 (`wattsplit_agent_vms` counts them); per-VM energy is the collector's.
 * Sampler health is one-hot over the three states, every state initialised to 0, so an alert on
 * `wattsplit_agent_sampler_state{state!="ok"} == 1` needs no `absent()`.
 */
import type { SamplerState, SamplerStatus } from './sampler.js';
import type { SenderMetrics } from './spooling-sender.js';

export interface AgentMetricsSnapshot {
  sender: SenderMetrics;
  /** Frames the spool refused (disk full, directory gone): lost. */
  spoolWriteFailures: number;
  frames: { sampled: number; vms: number; lastWallUnixS: number };
  samplers: readonly SamplerStatus[];
}

const SAMPLER_STATES: readonly SamplerState[] = ['ok', 'degraded', 'unavailable'];

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const num = (v: number): string => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN');

/** Text format 0.0.4; `labels` (e.g. `{ host: 'hv-01' }`) are added to every sample. */
export function agentMetricsText(m: AgentMetricsSnapshot, labels: Record<string, string> = {}): string {
  const base = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`);
  const lbl = (extra: Record<string, string> = {}): string => {
    const all = [...base, ...Object.entries(extra).map(([k, v]) => `${k}="${esc(v)}"`)];
    return all.length ? `{${all.join(',')}}` : '';
  };
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [Record<string, string>, number][]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) out.push(`${name}${lbl(l)} ${num(v)}`);
  };
  const s = m.sender;
  metric('wattsplit_agent_frames_total', 'counter', 'Telemetry frames sampled.', [[{}, m.frames.sampled]]);
  metric('wattsplit_agent_last_frame_timestamp_seconds', 'gauge', 'Wall-clock time of the last frame sampled, Unix seconds (0 before the first).', [[{}, m.frames.lastWallUnixS]]);
  metric('wattsplit_agent_vms', 'gauge', 'VMs in the last frame.', [[{}, m.frames.vms]]);
  metric('wattsplit_agent_spool_pending_frames', 'gauge', 'Frames spooled on disk and not yet acked by the gateway (the spool depth).', [[{}, s.pendingFrames]]);
  metric('wattsplit_agent_spool_pending_bytes', 'gauge', 'Bytes of those frames.', [[{}, s.pendingBytes]]);
  metric('wattsplit_agent_spool_segments', 'gauge', 'Spool segment files on disk.', [[{}, s.segments]]);
  metric('wattsplit_agent_spool_appended_frames_total', 'counter', 'Frames written to the spool.', [[{}, s.appendedFrames]]);
  metric('wattsplit_agent_spool_acked_frames_total', 'counter', 'Spooled frames acked by the gateway.', [[{}, s.ackedFrames]]);
  metric('wattsplit_agent_spool_dropped_frames_total', 'counter', 'Spooled frames dropped unsent because the spool was over its size or age bound.', [[{}, s.droppedFrames]]);
  metric('wattsplit_agent_spool_truncated_bytes_total', 'counter', 'Bytes of torn spool tails cut off at start (a crash mid-write).', [[{}, s.truncatedBytes]]);
  metric('wattsplit_agent_spool_write_failures_total', 'counter', 'Frames the spool could not store (disk full, directory gone): lost.', [[{}, m.spoolWriteFailures]]);
  metric('wattsplit_agent_sent_batches_total', 'counter', 'Batches the gateway acked OK.', [[{}, s.sentBatches]]);
  metric('wattsplit_agent_sent_frames_total', 'counter', 'Frames in those batches.', [[{}, s.sentFrames]]);
  metric('wattsplit_agent_send_failures_total', 'counter', 'Sends that failed or were answered RETRY, by kind (retry: sent again later; rejected: the gateway refused the batch for good, dead-lettered in the spool directory).', [
    [{ kind: 'retry' }, s.retries],
    [{ kind: 'rejected' }, s.rejectedBatches],
  ]);
  metric('wattsplit_agent_rejected_frames_total', 'counter', 'Frames in batches the gateway refused for good.', [[{}, s.rejectedFrames]]);
  metric('wattsplit_agent_gateway_reachable', 'gauge', '1 when the last send reached the gateway (or nothing failed yet), 0 while sends fail.', [[{}, s.lastError === undefined ? 1 : 0]]);
  metric(
    'wattsplit_agent_sampler_state',
    'gauge',
    'Sensor health, one-hot: 1 for the state each sampler (domains, rapl, vms, gpu, bmc, perf) is in, 0 for the others.',
    m.samplers.flatMap((st): [Record<string, string>, number][] => SAMPLER_STATES.map((state) => [{ sampler: st.name, state }, st.state === state ? 1 : 0])),
  );
  return out.join('\n') + '\n';
}
