/**
 * The peer server refuses (400, with the reason) every message the Raft core would refuse or
 * trip over (messageProblem, shared with RawNode.step), and every message the receiver's own
 * check refuses (TransportOptions.checkMessage), before anything is delivered.
 */

import assert from 'node:assert/strict';
import { encodeConfChange, encodeMessage, encodeMessages } from '../../src/raft/codec.js';
import { ConfChangeType, EntryType, MessageType, type Entry, type Message } from '../../src/raft/types.js';
import { HEADER_CLUSTER_ID, HEADER_FROM, HEADER_TO, type Transport } from '../../src/transport/index.js';
import { CLUSTER, makeNode, msg, newInbox, stoppedAfterEach, urlOf, type Inbox } from './helpers.js';

const ent = (index: number, term: number, type = EntryType.Normal, data = new Uint8Array([1])): Entry => ({ index, term, type, data });

describe('peer server: message checks', function () {
  const { started } = stoppedAfterEach();
  let node: Transport;
  let inbox: Inbox;

  beforeEach(async function () {
    inbox = newInbox();
    node = await started(makeNode(1, inbox, {
      peers: new Map([[2, 'http://127.0.0.1:2'], [3, 'http://127.0.0.1:3']]),
      // The runtime's kind of check: here, no entry data or context may start with 0xff.
      checkMessage: (m) =>
        m.entries.some((e) => e.data[0] === 0xff) || m.context[0] === 0xff ? 'entry data or context starts with 0xff' : null,
    }));
  });

  async function post(body: Uint8Array, from = '2', path = '/raft'): Promise<{ status: number; error: string }> {
    const res = await fetch(`${urlOf(node)}${path}`, {
      method: 'POST',
      headers: { [HEADER_CLUSTER_ID]: CLUSTER, [HEADER_FROM]: from, [HEADER_TO]: '1' },
      body: Buffer.from(body),
    });
    const text = await res.text();
    return { status: res.status, error: text === '' ? '' : (JSON.parse(text) as { error: string }).error };
  }

  const refused: Array<[string, Message, RegExp]> = [
    ['App entries not starting at index+1', msg(MessageType.App, 2, 1, { term: 2, index: 4, logTerm: 2, entries: [ent(6, 2)] }), /entries start at 6, expected 5/],
    ['App entries with a gap', msg(MessageType.App, 2, 1, { term: 2, index: 4, logTerm: 2, entries: [ent(5, 2), ent(7, 2)] }), /not contiguous/],
    ['App entry newer than the message', msg(MessageType.App, 2, 1, { term: 2, index: 4, logTerm: 2, entries: [ent(5, 3)] }), /above the message term/],
    ['App entry terms decreasing', msg(MessageType.App, 2, 1, { term: 3, index: 4, logTerm: 2, entries: [ent(5, 3), ent(6, 2)] }), /below the term/],
    ['Prop of an undecodable ConfChange', msg(MessageType.Prop, 2, 1, {
      term: 0,
      entries: [ent(0, 0, EntryType.ConfChange, (() => {
        const cc = encodeConfChange({ type: ConfChangeType.AddVoter, nodeId: 4, context: new Uint8Array() });
        return new Uint8Array([...cc, ...cc, ...cc]);
      })())],
    }), /undecodable ConfChange.*found 3/],
    ['Prop with a term', msg(MessageType.Prop, 2, 1, { term: 3, entries: [ent(0, 0)] }), /must carry term 0/],
    ['Vote without a term', msg(MessageType.Vote, 2, 1, { term: 0 }), /term 0/],
    ['Heartbeat carrying entries', msg(MessageType.Heartbeat, 2, 1, { entries: [ent(1, 1)] }), /only App and Prop/],
    ['a term beyond 2^52', msg(MessageType.Heartbeat, 2, 1, { term: 2 ** 52 + 1 }), /\[0, 2\^52\]/],
    ["the receiver's own check", msg(MessageType.App, 2, 1, { term: 1, entries: [ent(1, 1, EntryType.Normal, new Uint8Array([0xff]))] }), /starts with 0xff/],
  ];
  for (const [what, m, reason] of refused) {
    it(`refuses ${what} with 400 and the reason`, async function () {
      const r = await post(encodeMessages([msg(MessageType.Heartbeat, 2, 1), m]));
      assert.equal(r.status, 400);
      assert.match(r.error, reason);
      assert.equal(inbox.messages.length, 0, 'nothing of the batch delivered');
    });
  }

  it('refuses a snapshot with bad metadata, or one the receiver refuses, on the snapshot endpoint', async function () {
    const snap = (voters: number[], learners: number[], data = new Uint8Array([1])): Message =>
      msg(MessageType.Snap, 2, 1, { term: 2, snapshot: { metadata: { index: 9, term: 2, confState: { voters, learners } }, data } });
    for (const [m, reason] of [
      [snap([1, 2, 2], []), /lists node 2 twice/],
      [snap([1, 2], [2]), /lists node 2 twice/],
      [snap([], [1]), /no voters/],
    ] as const) {
      const r = await post(encodeMessage(m), '2', '/raft/snapshot');
      assert.equal(r.status, 400);
      assert.match(r.error, reason);
    }
    const ok = await post(encodeMessage(snap([1, 2], [3])), '2', '/raft/snapshot');
    assert.equal(ok.status, 204, ok.error);
    assert.equal(inbox.messages.length, 1);
  });

  it('refuses a request claiming to come from the receiver itself', async function () {
    const r = await post(encodeMessages([msg(MessageType.Heartbeat, 1, 1)]), '1');
    assert.equal(r.status, 400);
    assert.match(r.error, /claims to come from this node/);
  });

  it('applies the same checks to a batch carried back in an answer', async function () {
    const inboxB = newInbox();
    let answer: Message[] = [];
    const b = await started(makeNode(2, inboxB, {
      onMessages: () => {
        // Answer the append with whatever the test set (the sender validates what it gets back).
        setTimeout(() => b.send(answer), 1);
      },
    }));
    node.addPeer(2, urlOf(b));
    b.addPeer(1, urlOf(node));
    // Passes the core's rules, refused by the receiver's own check.
    answer = [msg(MessageType.AppResp, 2, 1, { context: new Uint8Array([0xff]) })];
    node.send([msg(MessageType.App, 1, 2)]);
    const peer = () => node.stats().peers.find((p) => p.id === 2)!;
    for (let i = 0; i < 500 && peer().badReplies === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(peer().badReplies, 1);
    assert.equal(inbox.messages.length, 0);
  });
});
