/**
 * A forwarded proposal (Prop) is never delivered twice, whatever happens to its connection.
 *
 * undici re-sends the written-but-unanswered requests of a pipelined connection that closes
 * (only the first one fails): after a reset, after the peer closes it (a restart), and after a
 * response timeout (which closes it). Answers stay unanswered long enough for that to matter:
 * a peer holds its answer for up to replyHoldMs to carry a reply in it, and a stalled peer does
 * not answer at all. A leader appends a re-sent Prop again, so the proposal would be applied
 * twice. Each case here has the peer receive and process proposal A, its answer held back by a
 * proxy, then proposal B sent behind it, then breaks the connection.
 */

import assert from 'node:assert/strict';
import { EntryType, MessageType, type Message } from '../../src/raft/types.js';
import type { Transport } from '../../src/transport/index.js';
import { CuttableProxy } from './proxy.js';
import { makeNode, msg, newInbox, nextTurn, stoppedAfterEach, urlOf, waitFor, type Inbox } from './helpers.js';

const text = (m: Message): string => new TextDecoder().decode(m.entries[0]!.data);

function prop(payload: string): Message {
  return msg(MessageType.Prop, 1, 2, {
    term: 0,
    entries: [{ term: 0, index: 0, type: EntryType.Normal, data: new TextEncoder().encode(payload) }],
  });
}

function deliveries(inbox: Inbox, payload: string): number {
  return inbox.messages.filter((m) => m.type === MessageType.Prop && text(m) === payload).length;
}

describe('transport: a proposal is never sent twice', function () {
  const { started } = stoppedAfterEach();
  let proxy: CuttableProxy | null = null;

  afterEach(async function () {
    await proxy?.close();
    proxy = null;
  });

  /** Node 1 sends to node 2 through a proxy. */
  async function pair(requestTimeoutMs?: number): Promise<{ a: Transport; inboxB: Inbox; proxy: CuttableProxy }> {
    const inboxB = newInbox();
    const b = await started(makeNode(2, inboxB));
    const p = (proxy = await CuttableProxy.start(b.address().port));
    const a = await started(makeNode(1, newInbox(), requestTimeoutMs !== undefined ? { requestTimeoutMs } : {}));
    a.addPeer(2, p.url);
    b.addPeer(1, urlOf(a));
    return { a, inboxB, proxy: p };
  }

  /** A reaches node 2 and its answer is held; B is then either sent behind A on the same
   * connection, or waits for A's answer in node 1's queue. */
  async function proposeAThenB(a: Transport, inboxB: Inbox, p: CuttableProxy): Promise<void> {
    p.holdAnswers();
    a.send([prop('A')]);
    await waitFor(() => deliveries(inboxB, 'A') === 1, 'A delivered');
    a.send([prop('B')]);
    await nextTurn(); // the queue has been flushed
    await waitFor(() => deliveries(inboxB, 'B') === 1 || a.stats().peers[0]!.queuedMessages > 0, 'B sent or queued');
  }

  /** Waits until node 1 has nothing left to send or waiting for an answer: no copy can come later. */
  async function settled(a: Transport): Promise<void> {
    await waitFor(() => {
      const s = a.stats().peers[0]!;
      return s.inflightRequests === 0 && s.queuedMessages === 0;
    }, 'node 1 settled');
  }

  function assertAtMostOnce(inboxB: Inbox): void {
    assert.equal(deliveries(inboxB, 'A'), 1, 'A delivered once');
    assert.ok(deliveries(inboxB, 'B') <= 1, `B delivered ${deliveries(inboxB, 'B')} times`);
  }

  it('the connection is reset with the answers unsent (pipeline re-send)', async function () {
    const { a, inboxB, proxy: p } = await pair();
    await proposeAThenB(a, inboxB, p);
    p.resetConnections();
    await settled(a);
    assertAtMostOnce(inboxB);
  });

  it('the peer closes the connection, as when it restarts (reconnect)', async function () {
    const { a, inboxB, proxy: p } = await pair();
    await proposeAThenB(a, inboxB, p);
    p.endConnections();
    await settled(a);
    assertAtMostOnce(inboxB);
  });

  it('the peer stalls until the request times out (response timeout)', async function () {
    const { a, inboxB, proxy: p } = await pair(300);
    await proposeAThenB(a, inboxB, p);
    // No cut: the answers never come; the timeout closes the connection.
    await settled(a);
    assertAtMostOnce(inboxB);
    assert.ok(a.stats().peers[0]!.failures >= 1, 'the stalled request failed');
  });

  it('appends and heartbeats still pipeline while a proposal waits for its answer', async function () {
    const { a, inboxB, proxy: p } = await pair();
    p.holdAnswers();
    a.send([prop('A')]);
    await waitFor(() => deliveries(inboxB, 'A') === 1, 'A delivered');
    for (let i = 0; i < 5; i++) {
      a.send([msg(MessageType.Heartbeat, 1, 2, { commit: i })]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => inboxB.messages.filter((m) => m.type === MessageType.Heartbeat).length === 5, 'heartbeats delivered');
    assert.ok(p.connections >= 2, 'proposals have a connection of their own');
  });
});
