import assert from 'node:assert/strict';

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
} from '../../src/node/envelope.js';

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
    const back = decodeSnapshotData(encodeSnapshotData({ peerUrls, stateMachine: sm }));
    assert.deepEqual(back.peerUrls, peerUrls);
    assert.deepEqual(Buffer.from(back.stateMachine), Buffer.from(sm));
    assert.throws(() => decodeSnapshotData(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])), /not written by the raftkv runtime/);
    const truncated = encodeSnapshotData({ peerUrls, stateMachine: sm }).subarray(0, 12);
    assert.throws(() => decodeSnapshotData(truncated), /truncated/);
  });
});
