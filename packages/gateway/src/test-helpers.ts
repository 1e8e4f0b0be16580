/** Test fixtures shared by the gateway tests: frames, a gRPC ingest client, a gated producer. */
import * as grpc from '@grpc/grpc-js';
import {
  type BatchAck,
  EnergySource,
  EnergyUnit,
  type InProcessBus,
  TELEMETRY_INGEST_SERVICE,
  decodeFrame,
  type BusMessage,
  type BusMessageIn,
  type BusProducer,
  type IFrameBatch,
  type ITelemetryFrame,
  type TelemetryFrame,
  type TransportResult,
} from '@wattsplit/wire';

export function frame(host: string, seq: number, over: Partial<ITelemetryFrame> = {}): ITelemetryFrame {
  return {
    hostId: host,
    hardwareClass: 'xeon-8480',
    seq,
    bootId: 'boot-1',
    monoNs: 1_000_000_000 * seq,
    wallUnixNs: 1_763_900_000_000_000_000 + 1_000_000_000 * seq,
    intervalMs: 1000,
    counters: [
      { id: 'intel-rapl:0', source: EnergySource.ENERGY_SOURCE_RAPL, domain: 'package', index: 0, value: 1_000_000 * seq, unit: EnergyUnit.ENERGY_UNIT_MICROJOULE, maxRange: 262_143_328_850 },
      { id: 'bmc', source: EnergySource.ENERGY_SOURCE_BMC, domain: 'chassis', index: -1, value: 300 * seq, unit: EnergyUnit.ENERGY_UNIT_JOULE, maxRange: 0 },
    ],
    vms: [{ uuid: 'vm-a', name: 'a', tenant: 't1', vcpus: 2, memoryBytes: 4 << 30, cpuTimeNs: 500_000_000 * seq, startedMonoNs: 1 }],
    ...over,
  };
}

type Pending = { resolve: (a: BatchAck) => void; reject: (e: Error) => void };

/** One ingest stream of a real grpc-js client. `send` resolves with the ack of that batch (acks come in order). */
export interface IngestStream {
  send(batch: IFrameBatch | Buffer): Promise<BatchAck>;
  end(): Promise<void>;
  /** The status the stream ended with, once it ended. */
  readonly closed: Promise<grpc.StatusObject>;
}

const RawIngestService = {
  ingest: { ...TELEMETRY_INGEST_SERVICE.ingest, requestSerialize: (b: Buffer | IFrameBatch): Buffer => (Buffer.isBuffer(b) ? b : TELEMETRY_INGEST_SERVICE.ingest.requestSerialize(b)) },
};
const IngestClient = grpc.makeGenericClientConstructor(RawIngestService, 'TelemetryIngest');

export function openStream(address: string, opts: { token?: string; credentials?: grpc.ChannelCredentials; channelOptions?: grpc.ChannelOptions } = {}): IngestStream & { client: grpc.Client } {
  const client = new IngestClient(address, opts.credentials ?? grpc.credentials.createInsecure(), opts.channelOptions ?? {});
  const md = new grpc.Metadata();
  if (opts.token) md.set('authorization', `Bearer ${opts.token}`);
  const call = (client as unknown as { ingest(md: grpc.Metadata): grpc.ClientDuplexStream<IFrameBatch | Buffer, BatchAck> }).ingest(md);
  const pending: Pending[] = [];
  let ended: grpc.StatusObject | undefined;
  const closed = new Promise<grpc.StatusObject>((resolve) => {
    call.on('status', (s: grpc.StatusObject) => {
      ended = s;
      for (const p of pending.splice(0)) p.reject(new Error(`stream ended before ack: ${s.code} ${s.details}`));
      resolve(s);
    });
  });
  call.on('data', (a: BatchAck) => pending.shift()?.resolve(a));
  call.on('error', () => undefined); // the status event carries it
  return {
    client,
    closed,
    send: (batch) =>
      new Promise<BatchAck>((resolve, reject) => {
        if (ended) return reject(new Error(`stream already ended: ${ended.code} ${ended.details}`));
        pending.push({ resolve, reject });
        call.write(batch);
      }),
    end: async () => {
      call.end();
      await closed;
      client.close();
    },
  };
}

/** A producer in front of a real InProcessBus whose sends can be held, failed or made retryable. */
export class ScriptedProducer implements BusProducer {
  readonly inner: BusProducer;
  /** What the next sends return before reaching the bus; empty = pass through. */
  readonly script: TransportResult[] = [];
  sends = 0;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  private sendStarted: (() => void)[] = [];

  constructor(readonly bus: InProcessBus) {
    this.inner = bus.producer();
  }

  hold(): void {
    this.gate = new Promise((r) => (this.openGate = r));
  }
  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }
  /** Resolves once `n` sends have started in total. */
  async sendsStarted(n: number): Promise<void> {
    while (this.sends < n) await new Promise<void>((r) => this.sendStarted.push(r));
  }

  async send(topic: string, messages: readonly BusMessageIn[]): Promise<TransportResult> {
    this.sends++;
    for (const r of this.sendStarted.splice(0)) r();
    if (this.gate) await this.gate;
    const scripted = this.script.shift();
    if (scripted && scripted.kind !== 'ok') return scripted;
    return this.inner.send(topic, messages);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Everything on a topic of the bus so far, in partition/offset order, frames decoded. */
export async function drainTopic(bus: InProcessBus, topic: string, group: string): Promise<{ msg: BusMessage; frame: TelemetryFrame }[]> {
  const got: { msg: BusMessage; frame: TelemetryFrame }[] = [];
  const sub = await bus.subscribe({
    topic,
    groupId: group,
    fromBeginning: true,
    handler: async (ms) => {
      for (const m of ms) got.push({ msg: m, frame: decodeFrame(m.value, `${m.topic} p${m.partition}@${m.offset}`) });
    },
  });
  await bus.idle();
  await sub.stop();
  return got;
}
