import assert from 'node:assert/strict';

import { encodeConfChange } from '../../src/raft/codec.js';
import { ConfChangeType, EntryType, MessageType, type Message } from '../../src/raft/types.js';
import {
  decodeConfChangeContext,
  decodeProposal,
  decodeReadContext,
  decodeSnapshotData,
  encodeConfChangeContext,
  encodeProposal,
  encodeReadContext,
  encodeSnapshotData,
  ownProposalSeq,
  requestTagOf,
} from '../../src/node/envelope.js';
import { confChangeContextProblem, peerMessageCheck } from '../../src/node/peer-check.js';
import { encodeSnapshotRef } from '../../src/node/snapshot-ref.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function message(type: MessageType, fields: Partial<Message>): Message {
  return {
    type, from: 2, to: 1, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
    snapshot: null, context: new Uint8Array(), ...fields,
  };
}

describe('node envelopes', () => {
  it('a proposal round-trips and is recognised only by its own origin and incarnation', () => {
    const payload = new TextEncoder().encode('hello');
    const data = encodeProposal({ origin: 7, incarnation: 0xdeadbeef, seq: 2 ** 40 }, payload);
    const decoded = decodeProposal(data);
    assert.deepEqual(decoded.tag, { origin: 7, incarnation: 0xdeadbeef, seq: 2 ** 40 });
    assert.deepEqual(Buffer.from(decoded.payload), Buffer.from(payload));
    assert.equal(ownProposalSeq(data, 7, 0xdeadbeef), 2 ** 40);
    assert.equal(ownProposalSeq(data, 8, 0xdeadbeef), 0);
    assert.equal(ownProposalSeq(data, 7, 1), 0);
    // An empty payload still carries its tag.
    assert.equal(decodeProposal(encodeProposal({ origin: 1, incarnation: 1, seq: 1 }, new Uint8Array())).payload.length, 0);
  });

  it('foreign entry data is passed through as the payload', () => {
    for (const raw of [new Uint8Array(), new Uint8Array([1, 2, 3]), new Uint8Array(40).fill(0xa5)]) {
      const d = decodeProposal(raw);
      assert.equal(d.tag, null);
      assert.equal(d.payload, raw);
    }
  });

  it('ConfChange contexts carry the URL and the tag, and accept a bare URL (raftexample style)', () => {
    const ctx = { url: 'http://127.0.0.1:4000', tag: { origin: 3, incarnation: 9, seq: 4 } };
    assert.deepEqual(decodeConfChangeContext(encodeConfChangeContext(ctx)), ctx);
    assert.deepEqual(decodeConfChangeContext(new TextEncoder().encode('http://10.0.0.1:2380')), {
      url: 'http://10.0.0.1:2380',
      tag: null,
    });
    assert.deepEqual(decodeConfChangeContext(new Uint8Array([0xff, 0x00])), { url: null, tag: null });
    assert.deepEqual(decodeConfChangeContext(new Uint8Array()), { url: null, tag: null });
  });

  it('a ConfChange context naming a URL the transport cannot use is a problem (peer-check)', () => {
    for (const url of ['ftp://127.0.0.1:1', 'https://127.0.0.1:9', 'not a url']) {
      const json = encodeConfChangeContext({ url, tag: { origin: 1, incarnation: 2, seq: 3 } });
      assert.notEqual(confChangeContextProblem(json), null, url);
    }
    assert.notEqual(confChangeContextProblem(utf8('http://[::1')), null, 'a bare URL is checked too');
    assert.equal(confChangeContextProblem(utf8(JSON.stringify({ url: 3 }))), 'context url must be a string');
    for (const fine of [new Uint8Array(), utf8('http://10.0.0.1:2380'), utf8('{}'), utf8('opaque'), new Uint8Array([0xff])]) {
      assert.equal(confChangeContextProblem(fine), null);
    }
  });

  it('peerMessageCheck refuses ConfChange entries with a bad URL and snapshots this runtime did not write', () => {
    const cc = (context: Uint8Array) => ({
      term: 0, index: 0, type: EntryType.ConfChange,
      data: encodeConfChange({ type: ConfChangeType.AddVoter, nodeId: 4, context }),
    });
    const bad = message(MessageType.Prop, { term: 0, entries: [cc(encodeConfChangeContext({ url: 'ftp://x:1', tag: null }))] });
    assert.match(peerMessageCheck(bad) ?? '', /Prop from 2: entry 0: ConfChange context: .*not an http:\/\/ URL/);
    const good = message(MessageType.Prop, { term: 0, entries: [cc(encodeConfChangeContext({ url: 'http://127.0.0.1:4', tag: null }))] });
    assert.equal(peerMessageCheck(good), null);
    const snap = (data: Uint8Array) => message(MessageType.Snap, {
      snapshot: { metadata: { index: 5, term: 1, confState: { voters: [1], learners: [] } }, data },
    });
    assert.match(peerMessageCheck(snap(new Uint8Array([1, 2, 3]))) ?? '', /snapshot data: .*bad magic/);
    const badTable = encodeSnapshotData({ peerUrls: new Map(), stateMachine: new Uint8Array(), proposals: [{ o: 1, i: 1, f: 0, x: 1, r: [3, 2] }] });
    assert.match(peerMessageCheck(snap(badTable)) ?? '', /snapshot metadata: proposal table/);
    assert.equal(peerMessageCheck(snap(encodeSnapshotData({ peerUrls: new Map(), stateMachine: new Uint8Array([1]), proposals: [] }))), null);
    // A descriptor (the state streamed after it): its head is the envelope.
    const head = encodeSnapshotData({ peerUrls: new Map(), stateMachine: new Uint8Array(), proposals: [] });
    assert.equal(peerMessageCheck(snap(encodeSnapshotRef({ head, bodyBytes: 10, bodyCrc: 1 }))), null);
    assert.match(peerMessageCheck(snap(encodeSnapshotRef({ head: new Uint8Array([1, 2]), bodyBytes: 10, bodyCrc: 1 }))) ?? '', /bad magic/);
  });

  it('requestTagOf finds the tag of a proposal and of a membership change', () => {
    const t = { origin: 3, incarnation: 4, seq: 5 };
    assert.deepEqual(requestTagOf({ term: 1, index: 1, type: EntryType.Normal, data: encodeProposal(t, utf8('x')) }), t);
    const context = encodeConfChangeContext({ url: null, tag: t });
    const data = encodeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 2, context });
    assert.deepEqual(requestTagOf({ term: 1, index: 1, type: EntryType.ConfChange, data }), t);
    assert.equal(requestTagOf({ term: 1, index: 1, type: EntryType.Normal, data: new Uint8Array() }), null, "a leader's empty entry");
    assert.equal(requestTagOf({ term: 1, index: 1, type: EntryType.ConfChange, data: utf8('junk') }), null);
  });

  it('read contexts are matched per incarnation', () => {
    const c = encodeReadContext(42, 17);
    assert.equal(decodeReadContext(c, 42), 17);
    assert.equal(decodeReadContext(c, 43), 0);
    assert.equal(decodeReadContext(new Uint8Array(3), 42), 0);
  });

  it('snapshot data keeps peer URLs next to the state machine bytes and refuses foreign data', () => {
    const peerUrls = new Map([
      [1, 'http://127.0.0.1:1'],
      [2, 'http://127.0.0.1:2'],
    ]);
    const sm = new Uint8Array([9, 8, 7]);
    const back = decodeSnapshotData(encodeSnapshotData({ peerUrls, stateMachine: sm, proposals: [] }));
    assert.deepEqual(back.peerUrls, peerUrls);
    assert.deepEqual(Buffer.from(back.stateMachine), Buffer.from(sm));
    assert.throws(() => decodeSnapshotData(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])), /not written by the raftkv runtime/);
    const truncated = encodeSnapshotData({ peerUrls, stateMachine: sm, proposals: [] }).subarray(0, 12);
    assert.throws(() => decodeSnapshotData(truncated), /truncated/);
  });

  it('snapshot data carries the table of applied proposals; snapshots written before it decode to an empty one', () => {
    const proposals = [{ o: 2, i: 9, f: 0, x: 40, r: [1, 3, 5, 5] }];
    const back = decodeSnapshotData(encodeSnapshotData({ peerUrls: new Map(), stateMachine: new Uint8Array([1]), proposals }));
    assert.deepEqual(back.proposals, proposals);
    // The format before the table: magic, metadata length, {"peers":…}, state machine bytes.
    const meta = utf8(JSON.stringify({ peers: { 1: 'http://127.0.0.1:1' } }));
    const old = new Uint8Array(8 + meta.length + 2);
    old.set([0x52, 0x4b, 0x4e, 0x31]);
    new DataView(old.buffer).setUint32(4, meta.length, true);
    old.set(meta, 8);
    old.set([7, 7], 8 + meta.length);
    const decoded = decodeSnapshotData(old);
    assert.deepEqual(decoded.proposals, []);
    assert.deepEqual(decoded.peerUrls, new Map([[1, 'http://127.0.0.1:1']]));
    assert.deepEqual([...decoded.stateMachine], [7, 7]);
  });
});
