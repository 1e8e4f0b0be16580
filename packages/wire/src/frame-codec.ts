/**
 * Frame encode/decode with structural validation. Semantic checks that need history (duplicate seq,
 * counters going backwards) live where the history is: the gateway and the attribution aligner.
 */
import { WattsplitError } from './errors.js';
import { FrameBatch, TelemetryFrame, type ITelemetryFrame, type IFrameBatch } from './telemetry.js';

export function encodeFrame(frame: ITelemetryFrame): Uint8Array {
  return TelemetryFrame.encode(frame).finish();
}

/** Decodes one frame; throws FRAME_DECODE_FAILED naming `where` (host, topic/offset) on bad bytes. */
export function decodeFrame(bytes: Uint8Array, where = 'frame'): TelemetryFrame {
  try {
    return TelemetryFrame.decode(bytes);
  } catch (e) {
    throw new WattsplitError('FRAME_DECODE_FAILED', `${where}: not a wattsplit.telemetry.v1.TelemetryFrame (${(e as Error).message}; ${bytes.length} bytes)`, {
      cause: e,
      details: { where, bytes: bytes.length },
    });
  }
}

export function encodeBatch(batch: IFrameBatch): Uint8Array {
  return FrameBatch.encode(batch).finish();
}

export function decodeBatch(bytes: Uint8Array, where = 'batch'): FrameBatch {
  try {
    return FrameBatch.decode(bytes);
  } catch (e) {
    throw new WattsplitError('FRAME_DECODE_FAILED', `${where}: not a wattsplit.telemetry.v1.FrameBatch (${(e as Error).message}; ${bytes.length} bytes)`, {
      cause: e,
      details: { where, bytes: bytes.length },
    });
  }
}

const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * Structural checks every frame must pass before it is accepted anywhere. Returns the problems found
 * (empty = valid); each names the field and the offending value.
 */
export function validateFrame(f: ITelemetryFrame): WattsplitError[] {
  const errs: WattsplitError[] = [];
  const host = f.hostId ?? '';
  const bad = (field: string, value: unknown, why: string) =>
    errs.push(new WattsplitError('FRAME_INVALID_FIELD', `frame host=${JSON.stringify(host)} seq=${String(f.seq ?? 0)}: ${field}=${JSON.stringify(value)} ${why}`, {
      details: { host, seq: f.seq ?? 0, field, value },
    }));
  if (!HOST_ID.test(host)) bad('host_id', host, 'must be 1-128 chars of [A-Za-z0-9._:-]');
  if (!f.seq || f.seq < 1 || !Number.isSafeInteger(f.seq)) bad('seq', f.seq ?? 0, 'must be a positive integer');
  if (!f.monoNs || f.monoNs <= 0) bad('mono_ns', f.monoNs ?? 0, 'must be > 0');
  if (!f.wallUnixNs || f.wallUnixNs <= 0) bad('wall_unix_ns', f.wallUnixNs ?? 0, 'must be > 0');
  // Index loops, not entries() (an [i, x] pair per element: ≈ 70 bytes of garbage per VM-sample, issue 15).
  const ids = new Set<string>();
  const counters = f.counters ?? [];
  for (let i = 0; i < counters.length; i++) {
    const c = counters[i]!;
    if (!c.id) bad(`counters[${i}].id`, c.id ?? '', 'must be set');
    else if (ids.has(c.id)) bad(`counters[${i}].id`, c.id, 'is repeated in the frame');
    else ids.add(c.id);
    if (!c.unit) bad(`counters[${i}].unit`, c.unit ?? 0, 'must be set');
    if (!c.source) bad(`counters[${i}].source`, c.source ?? 0, 'must be set');
    // A value above max_range is one bad counter (the aligner marks that source unusable), not a bad
    // frame: rejecting the frame would drop every other source's energy with it, frame after frame.
  }
  const vms = new Set<string>();
  const list = f.vms ?? [];
  for (let i = 0; i < list.length; i++) {
    const vm = list[i]!;
    if (!vm.uuid) bad(`vms[${i}].uuid`, vm.uuid ?? '', 'must be set');
    else if (vms.has(vm.uuid)) bad(`vms[${i}].uuid`, vm.uuid, 'is repeated in the frame');
    else vms.add(vm.uuid);
  }
  return errs;
}
