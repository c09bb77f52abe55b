/**
 * Transport behaviour over real sockets on 127.0.0.1: batching and order, pipelining, snapshot
 * isolation, bounded queues, dead peers with backoff and recovery, membership changes.
 */

import assert from 'node:assert/strict';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { EntryType, MessageType, type Message, type NodeId } from '../../src/raft/types.js';
import { HEADER_CLUSTER_ID, HEADER_FROM, HEADER_TO, PATH_MESSAGES, type Transport } from '../../src/transport/index.js';
import { encodeMessages } from '../../src/raft/codec.js';
import {
  CLUSTER,
  connectAll,
  listen,
  makeNode,
  msg,
  newInbox,
  nextTurn,
  stoppedAfterEach,
  urlOf,
  waitFor,
  type Inbox,
} from './helpers.js';

describe('transport', function () {
  const { started, servers } = stoppedAfterEach();

  it('three transports exchange batches both ways, in order per sender', async function () {
    const inboxes = new Map<NodeId, Inbox>();
    const nodes: Transport[] = [];
    for (const id of [1, 2, 3]) {
      const inbox = newInbox();
      inboxes.set(id, inbox);
      nodes.push(await started(makeNode(id, inbox)));
    }
    connectAll(nodes);

    const perPair = 300;
    // 30 turns of 10 messages per destination: each turn becomes one batch per peer.
    for (let turn = 0; turn < perPair / 10; turn++) {
      for (const from of nodes) {
        const out: Message[] = [];
        for (const to of nodes) {
          if (to === from) continue;
          for (let k = 0; k < 10; k++) {
            const seq = turn * 10 + k;
            out.push(msg(MessageType.App, from.id, to.id, {
              index: seq,
              entries: [{ term: 1, index: seq + 1, type: 0, data: new Uint8Array([seq & 0xff, from.id]) }],
            }));
          }
        }
        from.send(out);
      }
      await nextTurn();
    }
    await waitFor(
      () => [...inboxes.values()].every((i) => i.messages.length === 2 * perPair),
      'every node received every message',
    );
    for (const [id, inbox] of inboxes) {
      for (const from of [1, 2, 3]) {
        if (from === id) continue;
        const seqs = inbox.messages.filter((m) => m.from === from).map((m) => m.index);
        assert.deepEqual(seqs, Array.from({ length: perPair }, (_, i) => i), `order ${from}→${id}`);
        for (const m of inbox.messages.filter((x) => x.from === from)) {
          assert.equal(m.to, id);
          assert.deepEqual([...m.entries[0]!.data], [m.index & 0xff, from]);
        }
      }
      // Batched: far fewer requests than messages.
      assert.ok(inbox.batches < inbox.messages.length / 2, `node ${id}: ${inbox.batches} batches`);
      assert.deepEqual(inbox.unreachable, []);
    }
    // The receivers may have everything before the senders have read the last answers.
    await waitFor(
      () => nodes.every((n) => n.stats().peers.every((p) => p.sentMessages === perPair)),
      'every batch acknowledged',
    );
    for (const node of nodes) {
      for (const p of node.stats().peers) {
        assert.equal(p.sentMessages, perPair);
        assert.equal(p.droppedMessages, 0);
        assert.equal(p.failures, 0);
        assert.equal(p.queuedMessages, 0);
        assert.ok(p.sentBytes > 0);
      }
    }
  });

  it('pipelines many batch requests on one connection', async function () {
    const pipelining = 8;
    const inFlightBySocket = new Map<Socket, number>();
    let maxInFlight = 0;
    let held: http.ServerResponse[] = [];
    let fallbackUsed = false;
    // Holds every answer until `pipelining` requests are in flight on one socket; a
    // non-pipelining client would never get there (the fallback then releases it and the
    // assertion below fails).
    const fallback = setTimeout(() => {
      fallbackUsed = true;
      for (const r of held) r.writeHead(204).end();
      held = [];
    }, 5000);
    const { server, url } = await listen((req, res) => {
      const socket = req.socket;
      const n = (inFlightBySocket.get(socket) ?? 0) + 1;
      inFlightBySocket.set(socket, n);
      maxInFlight = Math.max(maxInFlight, n);
      res.on('finish', () => inFlightBySocket.set(socket, (inFlightBySocket.get(socket) ?? 1) - 1));
      req.resume();
      req.on('end', () => {
        held.push(res);
        if (n >= pipelining || fallbackUsed) {
          for (const r of held) r.writeHead(204).end();
          held = [];
        }
      });
    });
    servers.push(server);
    const inbox = newInbox();
    const a = await started(makeNode(1, inbox, { pipelining }));
    a.addPeer(2, url);
    // One message per turn → one request per turn.
    for (let i = 0; i < pipelining; i++) {
      a.send([msg(MessageType.Heartbeat, 1, 2, { index: i })]);
      await nextTurn();
    }
    await waitFor(() => a.stats().peers[0]!.sentBatches === pipelining, 'all batches answered');
    clearTimeout(fallback);
    assert.equal(fallbackUsed, false, 'requests were not pipelined');
    assert.equal(inFlightBySocket.size, 1, 'one connection');
    assert.equal(maxInFlight, pipelining);
  });

  it('a large snapshot in flight does not hold back heartbeats', async function () {
    const snapshotBytes = 8 * 1024 * 1024;
    const receiverInbox = newInbox();
    const events: string[] = [];
    let releaseSnapshot: (() => void) | null = null;
    let receivedSnapshot: Message | null = null;
    const b = await started(
      makeNode(2, receiverInbox, {
        onMessages: (msgs) => {
          for (const m of msgs) if (m.type === MessageType.Heartbeat) events.push(`hb${m.index}`);
          receiverInbox.messages.push(...msgs);
        },
        // The snapshot request stays open until heartbeats have arrived (or a guard fires).
        onSnapshot: (m) => {
          receivedSnapshot = m;
          events.push('snapshot-received');
          return new Promise<void>((resolve) => {
            const guard = setTimeout(() => {
              events.push('guard');
              resolve();
            }, 5000);
            releaseSnapshot = () => {
              clearTimeout(guard);
              resolve();
            };
          });
        },
      }),
    );
    const senderInbox = newInbox();
    const a = await started(makeNode(1, senderInbox, {
      onSnapshotStatus: (id, ok) => {
        events.push(`snapshot-status:${id}:${ok}`);
        senderInbox.snapshotStatus.push({ id, ok });
      },
    }));
    a.addPeer(2, urlOf(b));
    b.addPeer(1, urlOf(a));

    const data = new Uint8Array(snapshotBytes);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) & 0xff;
    a.send([msg(MessageType.Snap, 1, 2, {
      term: 3,
      snapshot: { metadata: { index: 100, term: 3, confState: { voters: [1, 2], learners: [] } }, data },
    })]);
    // Heartbeats sent after the snapshot started, until three have arrived while the receiver
    // holds the snapshot request open (the body fully read, the answer not yet given).
    let hb = 0;
    const beat = setInterval(() => a.send([msg(MessageType.Heartbeat, 1, 2, { index: hb++ })]), 2);
    const heartbeatsWhileHeld = () => {
      const at = events.indexOf('snapshot-received');
      return at < 0 ? 0 : events.slice(at).filter((e) => e.startsWith('hb')).length;
    };
    try {
      await waitFor(() => heartbeatsWhileHeld() >= 3, 'three heartbeats while the snapshot is open');
    } finally {
      clearInterval(beat);
    }
    const release = releaseSnapshot as (() => void) | null;
    if (release !== null) release();
    await waitFor(() => senderInbox.snapshotStatus.length === 1, 'snapshot status');
    assert.deepEqual(senderInbox.snapshotStatus, [{ id: 2, ok: true }]);
    assert.ok(!events.includes('guard'), `heartbeats waited for the snapshot: ${events.join(',')}`);
    const received = events.indexOf('snapshot-received');
    const done = events.indexOf('snapshot-status:2:true');
    const heartbeatsWhileOpen = events.slice(received, done).filter((e) => e.startsWith('hb'));
    assert.ok(heartbeatsWhileOpen.length >= 3, events.join(','));
    const snap = receivedSnapshot as Message | null;
    assert.ok(snap !== null);
    assert.equal(snap.snapshot!.data.byteLength, snapshotBytes);
    assert.equal(snap.snapshot!.metadata.index, 100);
    assert.equal(snap.snapshot!.data[4096 * 7], 7);
    const stats = a.stats().peers[0]!;
    assert.equal(stats.snapshotsSent, 1);
    assert.equal(stats.snapshotInFlight, false);
  });

  it('bounds the per-peer queue: drops are counted and the peer is reported unreachable', async function () {
    // A peer that accepts connections but never answers.
    const { server, url } = await listen((req) => req.resume());
    servers.push(server);
    const inbox = newInbox();
    const a = await started(makeNode(1, inbox, {
      pipelining: 2,
      requestTimeoutMs: 60_000,
      limits: { queueMessagesMax: 10, queueBytesMax: 64 * 1024 },
    }));
    a.addPeer(2, url);
    a.send([msg(MessageType.Heartbeat, 1, 2)]);
    await nextTurn();
    a.send([msg(MessageType.Heartbeat, 1, 2)]);
    await nextTurn();
    let s = a.stats().peers[0]!;
    assert.equal(s.inflightRequests, 2);
    assert.equal(s.queuedMessages, 0);
    assert.deepEqual(inbox.unreachable, []);

    // Count bound: 10 fit, 40 are dropped.
    a.send(Array.from({ length: 50 }, (_, i) => msg(MessageType.App, 1, 2, { index: i })));
    await nextTurn();
    s = a.stats().peers[0]!;
    assert.equal(s.queuedMessages, 10);
    assert.equal(s.droppedMessages, 40);
    assert.equal(s.inflightRequests, 2, 'no more requests than the pipelining depth');
    assert.deepEqual(inbox.unreachable, [2], 'one report per turn, not per message');

    // Byte bound: the queue holds at most 64 KiB of estimated payload.
    const b = await started(makeNode(3, newInbox(), {
      pipelining: 1,
      requestTimeoutMs: 60_000,
      limits: { queueMessagesMax: 1000, queueBytesMax: 64 * 1024 },
    }));
    b.addPeer(2, url);
    b.send([msg(MessageType.Heartbeat, 3, 2)]);
    await nextTurn();
    const big = () => msg(MessageType.App, 3, 2, {
      entries: [{ term: 1, index: 1, type: 0, data: new Uint8Array(10 * 1024) }],
    });
    b.send(Array.from({ length: 20 }, big));
    await nextTurn();
    const sb = b.stats().peers[0]!;
    assert.equal(sb.queuedMessages, 6, 'six 10 KiB messages fit in 64 KiB');
    assert.ok(sb.queuedBytes <= 64 * 1024);
    assert.equal(sb.droppedMessages, 14);
  });

  it('dead peer: reported unreachable, backs off, recovers when it comes back', async function () {
    // Find a free port, then leave it closed.
    const probe = await started(makeNode(2, newInbox()));
    const port = probe.address().port;
    await probe.stop();

    const inbox = newInbox();
    const logged: string[] = [];
    const logger = {
      debug: () => {},
      info: (m: string) => logged.push(`info ${m}`),
      warn: (m: string) => logged.push(`warn ${m}`),
    };
    const a = await started(makeNode(1, inbox, { backoff: { initialMs: 500, maxMs: 1000 }, logger }));
    a.addPeer(2, `http://127.0.0.1:${port}`);
    a.send([msg(MessageType.Heartbeat, 1, 2)]);
    await waitFor(() => a.stats().peers[0]!.failures === 1, 'first failure');
    assert.ok(inbox.unreachable.includes(2));
    let s = a.stats().peers[0]!;
    assert.equal(s.backingOff, true);
    assert.equal(s.droppedMessages, 1);

    // While backing off, new messages are dropped without touching the network.
    a.send([msg(MessageType.Heartbeat, 1, 2), msg(MessageType.Heartbeat, 1, 2)]);
    await nextTurn();
    s = a.stats().peers[0]!;
    assert.equal(s.droppedMessages, 3);
    assert.equal(s.failures, 1, 'no request was made while backing off');
    assert.equal(s.inflightRequests, 0);

    // A snapshot to a dead peer fails and says so.
    a.send([msg(MessageType.Snap, 1, 2, {
      snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1, 2], learners: [] } }, data: new Uint8Array(10) },
    })]);
    await waitFor(() => inbox.snapshotStatus.length === 1, 'snapshot failure reported');
    assert.deepEqual(inbox.snapshotStatus, [{ id: 2, ok: false }]);

    // The peer comes back on the same port: traffic resumes after the backoff expires.
    const backInbox = newInbox();
    const back = await started(makeNode(2, backInbox, { listenPort: port }));
    back.addPeer(1, urlOf(a));
    let i = 0;
    const beat = setInterval(() => a.send([msg(MessageType.Heartbeat, 1, 2, { index: i++ })]), 10);
    try {
      await waitFor(() => backInbox.messages.length >= 3, 'messages reach the restarted peer');
    } finally {
      clearInterval(beat);
    }
    // Acknowledgements reach the sender a little after the messages reach the receiver.
    await waitFor(() => a.stats().peers[0]!.sentMessages >= 3, 'acknowledged');
    assert.equal(a.stats().peers[0]!.backingOff, false, 'a success clears the backoff');
    const indexes = backInbox.messages.map((m) => m.index);
    assert.deepEqual(indexes, [...indexes].sort((x, y) => x - y), 'in order after recovery');
    // One warning per outage, one note when it ends.
    assert.equal(logged.filter((l) => l === 'warn transport: send failed').length, 1, logged.join('\n'));
    assert.equal(logged.filter((l) => l === 'info transport: peer reachable again').length, 1, logged.join('\n'));
  });

  it('reports forwarded proposals it never sent; a valid request from the peer ends the backoff', async function () {
    const probe = await started(makeNode(2, newInbox()));
    const port = probe.address().port;
    await probe.stop();

    const inbox = newInbox();
    const notSent: Array<{ to: NodeId; msgs: Message[] }> = [];
    // A backoff far longer than the test: only the peer's request can end it.
    const a = await started(makeNode(1, inbox, {
      backoff: { initialMs: 60_000, maxMs: 60_000 },
      onProposalsNotSent: (to, msgs) => notSent.push({ to, msgs }),
    }));
    a.addPeer(2, `http://127.0.0.1:${port}`);
    const prop = (n: number): Message => msg(MessageType.Prop, 1, 2, { term: 0, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array([n]) }] });

    // Refused connection: the proposal was never written, so it is reported.
    a.send([prop(1)]);
    await waitFor(() => notSent.length === 1, 'the refused proposal reported');
    assert.equal(a.stats().peers[0]!.backingOff, true);
    // Backing off: dropped unsent and reported; other messages are only counted.
    a.send([msg(MessageType.Heartbeat, 1, 2), prop(2), msg(MessageType.Heartbeat, 1, 2)]);
    await waitFor(() => notSent.length === 2, 'the proposal dropped while backing off reported');
    await nextTurn();
    assert.deepEqual(notSent.map((r) => [r.to, r.msgs.map((m) => [m.type, m.entries[0]!.data[0]])]), [
      [2, [[MessageType.Prop, 1]]],
      [2, [[MessageType.Prop, 2]]],
    ]);

    // The peer comes back. An invalid request from it (a malformed body) does not end the backoff.
    const backInbox = newInbox();
    const back = await started(makeNode(2, backInbox, { listenPort: port }));
    back.addPeer(1, urlOf(a));
    const headers = { [HEADER_CLUSTER_ID]: CLUSTER, [HEADER_FROM]: '2', [HEADER_TO]: '1', 'content-type': 'application/x-msgpack' };
    const bad = await fetch(`${urlOf(a)}${PATH_MESSAGES}`, { method: 'POST', headers, body: new Uint8Array([0xc1]) });
    assert.equal(bad.status, 400);
    assert.equal(a.stats().peers[0]!.backingOff, true, 'an invalid request is no proof');
    // A valid one is: from then on what node 1 sends reaches node 2 again.
    const good = await fetch(`${urlOf(a)}${PATH_MESSAGES}`, { method: 'POST', headers, body: encodeMessages([msg(MessageType.Heartbeat, 2, 1)]) });
    assert.equal(good.status, 204);
    assert.equal(a.stats().peers[0]!.backingOff, false, 'the peer is up: backoff ended');
    a.send([prop(3)]);
    await waitFor(() => backInbox.messages.some((m) => m.type === MessageType.Prop), 'the proposal reaches the peer');
    assert.deepEqual(backInbox.messages.map((m) => m.entries[0]?.data[0]), [3]);
    assert.equal(notSent.length, 2);
  });

  it('splits batches to fit bodyBytesMax and drops a message that can never fit', async function () {
    const inboxB = newInbox();
    const limits = { bodyBytesMax: 64 * 1024 };
    const b = await started(makeNode(2, inboxB, { limits }));
    const inboxA = newInbox();
    const a = await started(makeNode(1, inboxA, { limits }));
    a.addPeer(2, urlOf(b));
    b.addPeer(1, urlOf(a));
    const entry = (n: number, bytes: number) => ({ term: 1, index: n, type: 0, data: new Uint8Array(bytes).fill(n) });
    a.send(Array.from({ length: 10 }, (_, n) => msg(MessageType.App, 1, 2, { index: n, entries: [entry(n + 1, 20 * 1024)] })));
    await waitFor(() => inboxB.messages.length === 10, 'ten messages');
    assert.deepEqual(inboxB.messages.map((m) => m.index), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(inboxB.batches >= 4, `${inboxB.batches} batches for 200 KiB with a 64 KiB cap`);

    a.send([msg(MessageType.App, 1, 2, { index: 99, entries: [entry(100, 100 * 1024)] })]);
    a.send([msg(MessageType.Heartbeat, 1, 2, { index: 100 })]);
    await waitFor(() => inboxB.messages.length === 11, 'the heartbeat after the oversized message');
    assert.equal(inboxB.messages[10]!.index, 100);
    assert.equal(a.stats().peers[0]!.droppedMessages, 1);
    assert.ok(inboxA.unreachable.includes(2));
    assert.equal(b.stats().server.rejected[413], undefined, 'never sent: no 413');
  });

  it('removed peers are refused with 410 and re-added peers accepted again', async function () {
    const inboxA = newInbox();
    const inboxB = newInbox();
    const a = await started(makeNode(1, inboxA, { backoff: { initialMs: 50, maxMs: 50 } }));
    const b = await started(makeNode(2, inboxB));
    connectAll([a, b]);
    a.send([msg(MessageType.Heartbeat, 1, 2, { index: 1 })]);
    await waitFor(() => inboxB.messages.length === 1, 'first message');

    b.removePeer(1);
    a.send([msg(MessageType.Heartbeat, 1, 2, { index: 2 })]);
    await waitFor(() => a.stats().peers[0]!.failures === 1, 'refused');
    assert.equal(b.stats().server.rejected[410], 1);
    assert.ok(inboxA.unreachable.includes(2));
    assert.equal(inboxB.messages.length, 1);
    // b no longer sends to a.
    b.send([msg(MessageType.Heartbeat, 2, 1)]);
    assert.equal(b.stats().droppedUnknownPeer, 1);
    assert.equal(b.stats().peers.length, 0);

    b.addPeer(1, urlOf(a));
    let i = 3;
    const beat = setInterval(() => a.send([msg(MessageType.Heartbeat, 1, 2, { index: i++ })]), 10);
    try {
      await waitFor(() => inboxB.messages.length >= 2, 'accepted again');
    } finally {
      clearInterval(beat);
    }
  });

  it('validates its options with clear errors', function () {
    const inbox = newInbox();
    assert.throws(() => makeNode(0, inbox), /id must be a positive safe integer/);
    assert.throws(() => makeNode(1, inbox, { clusterId: '' }), /clusterId/);
    assert.throws(() => makeNode(1, inbox, { listenPort: 70000 }), /listenPort/);
    assert.throws(() => makeNode(1, inbox, { limits: { queueMessagesMax: 0 } }), /limits.queueMessagesMax/);
    assert.throws(() => makeNode(1, inbox, { pipelining: 0 }), /pipelining/);
    assert.throws(() => makeNode(1, inbox, { backoff: { initialMs: 10, maxMs: 5 } }), /backoff/);
    assert.throws(() => makeNode(1, inbox, { peers: new Map([[2, 'not a url']]) }), /invalid peer URL/);
    assert.throws(() => makeNode(1, inbox, { peers: new Map([[2, 'https://127.0.0.1:1']]) }), /only http/);
  });

  it('never calls back from inside send(); an oversized snapshot fails asynchronously', async function () {
    const inbox = newInbox();
    const a = await started(makeNode(1, inbox, { limits: { snapshotBytesMax: 1024 } }));
    a.addPeer(2, 'http://127.0.0.1:1');
    a.send([msg(MessageType.Snap, 1, 2, {
      snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1, 2], learners: [] } }, data: new Uint8Array(4096) },
    })]);
    assert.deepEqual(inbox.snapshotStatus, [], 'not synchronously');
    await waitFor(() => inbox.snapshotStatus.length === 1, 'snapshot failure');
    assert.deepEqual(inbox.snapshotStatus, [{ id: 2, ok: false }]);
    assert.deepEqual(inbox.unreachable, [2]);
    assert.equal(a.stats().peers[0]!.snapshotsFailed, 1);
  });

  it('stop() closes the server, drops queues and makes no more callbacks', async function () {
    const { server, url } = await listen((req) => req.resume());
    servers.push(server);
    const inbox = newInbox();
    const a = makeNode(1, inbox, { pipelining: 1, requestTimeoutMs: 60_000 });
    await a.start();
    a.addPeer(2, url);
    a.send([msg(MessageType.Heartbeat, 1, 2)]);
    await nextTurn();
    a.send([msg(MessageType.Heartbeat, 1, 2), msg(MessageType.Heartbeat, 1, 2)]);
    const port = a.address().port;
    await a.stop();
    await a.stop(); // idempotent
    assert.deepEqual(a.stats().peers, []);
    a.send([msg(MessageType.Heartbeat, 1, 2)]); // ignored, no throw
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(inbox.unreachable, []);
    // The port is free again.
    const again = await started(makeNode(1, newInbox(), { listenPort: port }));
    assert.equal(again.address().port, port);
  });
});
