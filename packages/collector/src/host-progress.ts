/**
 * HostProgress: how far the collector got with each host, the one place that answers "is this frame a
 * replay?", "was this host's checkpoint looked up?" and "must its aligner be re-seeded?".
 *
 * Per host:
 * - committed: the last frame whose interval is stored and published (or the seed frame the host's
 *   intervals start from: a first frame, a checkpoint it resumed from, a frame whose interval was already
 *   stored). A frame at or below its seq, of the same boot, is a replay.
 * - resumed: the host's checkpoint was looked up since this collector took the host's partition. Set once per
 *   take-over, so a host's checkpoint is looked up once each time; a host is looked up only while it has
 *   neither a committed frame nor this mark (`needsResume`). `release` (the partition was handled by another
 *   collector in between: partition-continuity.ts) clears everything of the host, as if never seen.
 * - stored floor: the highest seq stored before this collector took the host over, recorded only when the
 *   host resumes; frames up to it are checked against the store before anything of them is written. Once
 *   dropped (a frame passed it) it never comes back.
 * - dirty: a frame of the host was aligned but nothing of it was kept (its batch will be redelivered): the
 *   host's aligner is re-seeded from the committed frame before its next frame. Taken (and cleared) once.
 */
import type { ITelemetryFrame } from '@wattsplit/wire';

/** The highest seq stored for a host, and the boot it belongs to. */
export interface StoredFloor {
  seq: number;
  bootId: string;
}

export class HostProgress {
  private readonly committedFrames = new Map<string, ITelemetryFrame>();
  private readonly resumedHosts = new Set<string>();
  private readonly floors = new Map<string, StoredFloor>();
  private readonly dirtyHosts = new Set<string>();

  /** The host's committed frame, if any. */
  committed(host: string): ITelemetryFrame | undefined {
    return this.committedFrames.get(host);
  }

  /** Records `frame` as the host's committed frame. */
  commit(host: string, frame: ITelemetryFrame): void {
    this.committedFrames.set(host, frame);
  }

  /** Forgets the host's committed frame (its intervals start afresh); its resume mark stays. */
  uncommit(host: string): void {
    this.committedFrames.delete(host);
  }

  /** True while the host has neither a committed frame nor a looked-up checkpoint. */
  needsResume(host: string): boolean {
    return !this.committedFrames.has(host) && !this.resumedHosts.has(host);
  }

  /** Marks the host's checkpoint as looked up, with the highest seq already stored for it, if any. */
  resumed(host: string, floor: StoredFloor | undefined): void {
    this.resumedHosts.add(host);
    if (floor) this.floors.set(host, floor);
  }

  /** The highest seq stored before this collector took the host over, until a frame passes it. */
  storedFloor(host: string): StoredFloor | undefined {
    return this.floors.get(host);
  }

  /** A frame passed the stored floor: from now on the host's frames are new. */
  passedStoredFloor(host: string): void {
    this.floors.delete(host);
  }

  /** Forgets everything of the host: its next frame resumes from the store as on a first take-over. */
  release(host: string): void {
    this.committedFrames.delete(host);
    this.resumedHosts.delete(host);
    this.floors.delete(host);
    this.dirtyHosts.delete(host);
  }

  /** Nothing of the host's last aligned frame was kept: re-seed its aligner before its next frame. */
  markDirty(host: string): void {
    this.dirtyHosts.add(host);
  }

  /** True (once) when the host must be re-seeded from its committed frame before its next frame. */
  takeDirty(host: string): boolean {
    return this.dirtyHosts.delete(host);
  }
}
