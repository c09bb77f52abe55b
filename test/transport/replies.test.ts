/**
 * Replies carried in the answers to a peer's requests (src/transport/reply.ts), over real
 * sockets on 127.0.0.1: acks travel back without a request of their own, a held answer with
 * nothing to carry is released, appends never take that path, and a peer answering with a
 * bad batch is refused without harm.
 */

import assert from 'node:assert/strict';
import { encodeMessages } from '../../src/raft/codec.js';
import { MessageType, type NodeId } from '../../src/raft/types.js';
import { HEADER_ACCEPT_REPLIES, HEADER_CLUSTER_ID, HEADER_FROM, HEADER_TO, type Transport } from '../../src/transport/index.js';
import { CLUSTER, listen, makeNode, msg, newInbox, stoppedAfterEach, urlOf, waitFor, type Inbox } from './helpers.js';

describe('transport replies in answers', function () {
  const { started, servers } = stoppedAfterEach();

  /** Two transports; `b` answers every App it gets with an AppResp, like a follower. */
  async function pair(replyHoldMs?: number): Promise<{ a: Transport; b: Transport; inboxA: Inbox; inboxB: Inbox }> {
    const inboxA = newInbox();
    const inboxB = newInbox();
    const a = await started(makeNode(1, inboxA, replyHoldMs !== undefined ? { replyHoldMs } : {}));
    let bRef: Transport | null = null;
    const b = await started(makeNode(2, inboxB, {
      ...(replyHoldMs !== undefined ? { replyHoldMs } : {}),
      onMessages: (msgs) => {
        inboxB.batches++;
        inboxB.messages.push(...msgs);
        const acks = msgs
          .filter((m) => m.type === MessageType.App)
          .map((m) => msg(MessageType.AppResp, 2, m.from, { index: m.index + m.entries.length }));
        // Like the runtime: the ack goes out a little later (after a "sync").
        if (acks.length > 0) setTimeout(() => bRef!.send(acks), 2);
      },
    }));
    bRef = b;
    a.addPeer(2, urlOf(b));
    b.addPeer(1, urlOf(a));
    return { a, b, inboxA, inboxB };
  }

  it('an ack travels back in the answer to the request that carried the append', async function () {
    const { a, b, inboxA } = await pair();
    const rounds = 20;
    for (let i = 0; i < rounds; i++) {
      a.send([msg(MessageType.App, 1, 2, { index: i, entries: [{ term: 1, index: i + 1, type: 0, data: new Uint8Array([i]) }] })]);
      await waitFor(() => inboxA.messages.length === i + 1, `ack ${i}`);
    }
    assert.deepEqual(inboxA.messages.map((m) => [m.type, m.from, m.index]), Array.from({ length: rounds }, (_, i) => [MessageType.AppResp, 2, i + 1]));
    const fromB = b.stats().peers.find((p) => p.id === 1)!;
    const fromA = a.stats().peers.find((p) => p.id === 2)!;
    // Every ack rode in an answer: node 2 never had to open a request to node 1.
    assert.equal(fromB.sentAsReplies, rounds);
    assert.equal(a.stats().server.receivedBatches, 0);
    assert.equal(fromA.receivedReplyMessages, rounds);
    assert.equal(fromA.badReplies, 0);
  });

  it('appends and heartbeats never ride in answers, so their order per sender holds', async function () {
    const inboxA = newInbox();
    const inboxB = newInbox();
    const a = await started(makeNode(1, inboxA));
    const b = await started(makeNode(2, inboxB, {
      onMessages: (msgs) => {
        inboxB.messages.push(...msgs);
      },
    }));
    a.addPeer(2, urlOf(b));
    b.addPeer(1, urlOf(a));
    // Both directions busy at once: held answers exist on both sides while appends flow.
    for (let i = 0; i < 50; i++) {
      a.send([msg(MessageType.App, 1, 2, { index: i })]);
      b.send([msg(MessageType.Heartbeat, 2, 1, { commit: i })]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => inboxB.messages.length === 50 && inboxA.messages.length === 50, 'all delivered');
    assert.deepEqual(inboxB.messages.map((m) => m.index), Array.from({ length: 50 }, (_, i) => i));
    assert.deepEqual(inboxA.messages.map((m) => m.commit), Array.from({ length: 50 }, (_, i) => i));
    assert.equal(a.stats().peers[0]!.sentAsReplies, 0);
    assert.equal(b.stats().peers[0]!.sentAsReplies, 0);
  });

  it('a held answer with nothing to carry is released with 204', async function () {
    const inbox = newInbox();
    const b = await started(makeNode(2, inbox, { replyHoldMs: 30 }));
    b.addPeer(1, 'http://127.0.0.1:9'); // a member (never reached: nothing is sent to it)
    const res = await fetch(`${urlOf(b)}/raft`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-msgpack',
        [HEADER_CLUSTER_ID]: CLUSTER,
        [HEADER_FROM]: '1',
        [HEADER_TO]: '2',
        [HEADER_ACCEPT_REPLIES]: '1',
      },
      body: Buffer.from(encodeMessages([msg(MessageType.TimeoutNow, 1, 2)])),
    });
    assert.equal(res.status, 204);
    assert.equal(inbox.messages.length, 1);
  });

  it('without the opt-in header a batch is answered 204 at once, as before', async function () {
    const inbox = newInbox();
    // A hold far longer than the test's timeout: a held answer would fail the test.
    const b = await started(makeNode(2, inbox, { replyHoldMs: 60_000 }));
    b.addPeer(1, 'http://127.0.0.1:9');
    const res = await fetch(`${urlOf(b)}/raft`, {
      method: 'POST',
      headers: { [HEADER_CLUSTER_ID]: CLUSTER, [HEADER_FROM]: '1', [HEADER_TO]: '2' },
      body: Buffer.from(encodeMessages([msg(MessageType.Heartbeat, 1, 2)])),
    });
    assert.equal(res.status, 204);
  });

  it('a peer answering with a malformed or forged batch is refused; the sender keeps working', async function () {
    const inbox = newInbox();
    const a = await started(makeNode(1, inbox));
    let n = 0;
    const bodies: Array<{ from: string; body: Buffer }> = [
      { from: '2', body: Buffer.from([0xc1, 0x00, 0xff]) }, // not msgpack
      { from: '2', body: Buffer.from(encodeMessages([msg(MessageType.AppResp, 3, 1)])) }, // forged sender
      { from: '2', body: Buffer.from(encodeMessages([msg(MessageType.AppResp, 2, 7)])) }, // not for us
      { from: '9', body: Buffer.from(encodeMessages([msg(MessageType.AppResp, 2, 1)])) }, // wrong node answering
      { from: '2', body: Buffer.from(encodeMessages([msg(MessageType.AppResp, 2, 1, { index: 42 })])) }, // good
    ];
    const { server, url } = await listen((req, res) => {
      req.resume();
      req.on('end', () => {
        const { from, body } = bodies[Math.min(n++, bodies.length - 1)]!;
        res.writeHead(200, { [HEADER_FROM]: from, [HEADER_CLUSTER_ID]: CLUSTER, 'content-length': String(body.byteLength) });
        res.end(body);
      });
    });
    servers.push(server);
    a.addPeer(2, url);
    for (let i = 0; i < bodies.length; i++) {
      a.send([msg(MessageType.App, 1, 2, { index: i })]);
      await waitFor(() => n > i && a.stats().peers[0]!.inflightRequests === 0, `answer ${i}`);
    }
    const p = a.stats().peers[0]!;
    assert.equal(p.badReplies, 4, 'four bad answers refused');
    assert.equal(p.receivedReplyMessages, 1);
    assert.deepEqual(inbox.messages.map((m) => [m.type, m.from, m.index]), [[MessageType.AppResp, 2, 42]]);
    assert.equal(p.failures, 0, 'a refused answer is not a failed request');
  });

  it('membership: a removed peer gets no held answers', async function () {
    const { a, b } = await pair(60_000);
    b.removePeer(1);
    const sent: NodeId[] = [];
    a.send([msg(MessageType.App, 1, 2)]);
    await waitFor(() => a.stats().peers[0]!.failures > 0, '410 from the peer that removed us');
    sent.push(...b.stats().peers.map((p) => p.id));
    assert.deepEqual(sent, []);
  });
});
