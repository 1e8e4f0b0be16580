#!/usr/bin/env node
// A real Kafka + ClickHouse cluster on loopback (topology in scripts/lib/cluster.mjs, docs/fleet.md "Cluster"):
// 3 KRaft brokers (replication factor 3, min.insync.replicas 2), one ZooKeeper, ClickHouse 18.16 cluster
// `wattsplit` with shard 01 = ch1 + ch2 (replicas) and shard 02 = ch3.
//
//   node scripts/cluster.mjs up [--json]     start it (bounded: Kafka 150 s, ClickHouse 60 s); prints the env
//                                           (export lines, or with --json one JSON line {env, status, startSeconds})
//   node scripts/cluster.mjs down            stop what `up` recorded in .cache/cluster/state.json, delete its data
//   node scripts/cluster.mjs status [--json] per process: pid, ports, answering, RSS
//   node scripts/cluster.mjs stop-node NAME [--term]   kill one broker/server (kafka1..3, ch1..3), data kept
//   node scripts/cluster.mjs start-node NAME            start it again (same ports and data)
// Exit status: 0 ok, 1 failure (the reason on stderr), 2 the machine lacks java/jars/clickhouse-server.
// It never touches the servers of scripts/services.mjs or scripts/kafka.sh.
import { clusterEnv, down, readState, startNode, status, stopNode, up } from './lib/cluster.mjs';

const [cmd, ...rest] = process.argv.slice(2);
const json = rest.includes('--json');
const say = (m) => process.stderr.write(`cluster: ${m}\n`);

async function main() {
  switch (cmd) {
    case 'up': {
      const s = await up(say);
      const env = clusterEnv(s);
      const st = await status(s);
      if (json) process.stdout.write(`${JSON.stringify({ env, startSeconds: s.startSeconds, status: st })}\n`);
      else {
        for (const x of st) say(`${x.name.padEnd(9)} pid ${x.pid} ${x.ready ? 'ready' : 'NOT READY'} ${x.rssMiB} MiB`);
        say(`up in ${s.startSeconds} s`);
        for (const [k, v] of Object.entries(env)) process.stdout.write(`export ${k}=${v}\n`);
      }
      return 0;
    }
    case 'down':
      await down(say);
      return 0;
    case 'status': {
      const s = readState();
      const st = await status(s);
      if (json) process.stdout.write(`${JSON.stringify({ running: !!s, env: s ? clusterEnv(s) : {}, status: st })}\n`);
      else if (!s) say('no cluster recorded');
      else for (const x of st) process.stdout.write(`${x.name.padEnd(9)} pid ${x.pid} ${x.ready ? 'ready' : 'down'} ${x.rssMiB} MiB\n`);
      return s && st.every((x) => x.ready) ? 0 : 1;
    }
    case 'stop-node':
      say(`${rest[0]}: ${await stopNode(rest[0], rest.includes('--term') ? 'SIGTERM' : 'SIGKILL')}`);
      return 0;
    case 'start-node':
      say(`${rest[0]}: up (pid ${await startNode(rest[0], say)})`);
      return 0;
    default:
      process.stderr.write('usage: node scripts/cluster.mjs up [--json] | down | status [--json] | stop-node NAME [--term] | start-node NAME\n');
      return 2;
  }
}

try {
  process.exitCode = await main();
} catch (e) {
  say(e.message);
  process.exitCode = e.unavailable ? 2 : 1;
}
