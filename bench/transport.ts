/**
 * Micro-benchmark: Raft messages per second through the transport over loopback.
 *
 *   npx tsx bench/transport.ts [--messages N] [--entry-bytes B] [--per-turn K] [--pipelining P]
 *
 * One sender, one receiver in this process (so both ends share one CPU core: the numbers are
 * a lower bound for two processes). Each event-loop turn the sender queues K App messages with
 * one entry of B bytes; the transport turns each turn into one batch request. The sender keeps
 * at most a few turns ahead of the receiver so nothing is dropped.
 */

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { MessageType, type Message } from '../src/raft/types.js';
import { Transport } from '../src/transport/index.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '200000' },
    'entry-bytes': { type: 'string', default: '256' },
    'per-turn': { type: 'string', default: '64' },
    pipelining: { type: 'string', default: '8' },
  },
});
const total = Number(values.messages);
const entryBytes = Number(values['entry-bytes']);
const perTurn = Number(values['per-turn']);
const pipelining = Number(values.pipelining);

let received = 0;
let batches = 0;
let unreachable = 0;
const receiver = new Transport({
  id: 2,
  clusterId: 'bench',
  peers: new Map(),
  listenPort: 0,
  onMessages: (msgs) => {
    received += msgs.length;
    batches++;
  },
  onUnreachable: () => unreachable++,
  onSnapshotStatus: () => {},
});
const sender = new Transport({
  id: 1,
  clusterId: 'bench',
  peers: new Map(),
  listenPort: 0,
  pipelining,
  onMessages: () => {},
  onUnreachable: () => unreachable++,
  onSnapshotStatus: () => {},
});
await receiver.start();
await sender.start();
sender.addPeer(2, `http://127.0.0.1:${receiver.address().port}`);
receiver.addPeer(1, `http://127.0.0.1:${sender.address().port}`);

const data = new Uint8Array(entryBytes).fill(7);
function message(i: number): Message {
  return {
    type: MessageType.App, from: 1, to: 2, term: 1, logTerm: 1, index: i, commit: i,
    entries: [{ term: 1, index: i + 1, type: 0, data }],
    reject: false, rejectHint: 0, snapshot: null, context: new Uint8Array(0),
  };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const started = performance.now();
let sent = 0;
while (sent < total) {
  // Stay at most 2 × pipelining turns ahead of the receiver.
  if (sent - received > perTurn * pipelining * 2) {
    await turn();
    continue;
  }
  const batch: Message[] = [];
  for (let k = 0; k < perTurn && sent < total; k++) batch.push(message(sent++));
  sender.send(batch);
  await turn();
}
while (received < total && unreachable === 0) await turn();
const seconds = (performance.now() - started) / 1000;
const stats = sender.stats().peers[0]!;
console.log(JSON.stringify({
  messages: received,
  entryBytes,
  perTurn,
  pipelining,
  seconds: Number(seconds.toFixed(3)),
  messagesPerSec: Math.round(received / seconds),
  batches,
  avgBatch: Number((received / batches).toFixed(1)),
  mbPerSec: Number((stats.sentBytes / seconds / 1e6).toFixed(1)),
  dropped: stats.droppedMessages,
  failures: stats.failures,
}));
await sender.stop();
await receiver.stop();
