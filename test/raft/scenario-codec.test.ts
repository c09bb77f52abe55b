/**
 * Codec: every MessageType survives encode → decode unchanged (alone and in a batch), and
 * malformed input of any kind is rejected with CodecError — never another exception type.
 */
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import {
  CodecError,
  SeededRandom,
  decodeConfChange,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeMessages,
  encodeConfChange,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeMessages,
} from '../../src/raft/index.js';
import { ConfChangeType, EntryType, MessageType, type Message } from '../../src/raft/types.js';
import { bytes, ent, msg, reportSeedOnFailure, TEST_SEED } from './harness.js';

/** Structural view with byte fields as plain arrays (a Buffer and a Uint8Array compare equal). */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Array.from(v) };
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

const allTypes = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number');

/** A representative, fully populated message of type `t`. */
function sample(t: MessageType): Message {
  const base = msg({ type: t, from: 3, to: 7, term: 2 ** 40, logTerm: 2 ** 40 - 1, index: Number.MAX_SAFE_INTEGER - 5, commit: 123456789 });
  switch (t) {
    case MessageType.App:
    case MessageType.Prop:
      return { ...base, entries: [ent(1, 1), ent(2, 1, 'hello'), ent(3, 2, encodeConfChange({ type: ConfChangeType.AddLearner, nodeId: 9, context: bytes('u') }), EntryType.ConfChange)] };
    case MessageType.AppResp:
      return { ...base, reject: true, rejectHint: 77 };
    case MessageType.Snap:
      return { ...base, snapshot: { metadata: { index: 50, term: 4, confState: { voters: [1, 2, 3], learners: [9] } }, data: new Uint8Array([0, 255, 1, 2]) } };
    case MessageType.Heartbeat:
    case MessageType.HeartbeatResp:
    case MessageType.ReadIndex:
    case MessageType.ReadIndexResp:
      return { ...base, context: bytes('read-ctx') };
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      return { ...base, reject: true };
    default:
      return base;
  }
}

describe('Codec round trip', function () {
  afterEach(reportSeedOnFailure);

  for (const t of allTypes) {
    it(`MessageType.${MessageType[t]} survives encode/decode`, function () {
      const m = sample(t);
      const decoded = decodeMessage(encodeMessage(m));
      assert.deepEqual(plain(decoded), plain(m));
      for (const e of decoded.entries) assert.ok(e.data instanceof Uint8Array);
      assert.ok(decoded.context instanceof Uint8Array);
    });
  }

  it('a batch of every message type survives encodeMessages/decodeMessages', function () {
    const ms = allTypes.map(sample);
    assert.deepEqual(plain(decodeMessages(encodeMessages(ms))), plain(ms));
    assert.deepEqual(decodeMessages(encodeMessages([])), []);
  });

  it('entries, hard states and conf changes round-trip', function () {
    const e = ent(Number.MAX_SAFE_INTEGER, 2 ** 50, 'payload');
    assert.deepEqual(plain(decodeEntry(encodeEntry(e))), plain(e));
    const hs = { term: 9, vote: 3, commit: 2 ** 45 };
    assert.deepEqual(decodeHardState(encodeHardState(hs)), hs);
    for (const type of [ConfChangeType.AddVoter, ConfChangeType.RemoveNode, ConfChangeType.AddLearner, ConfChangeType.PromoteLearner]) {
      const cc = { type, nodeId: 42, context: bytes('http://127.0.0.1:1') };
      assert.deepEqual(plain(decodeConfChange(encodeConfChange(cc))), plain(cc));
    }
  });

  it('decoded byte fields do not alias the input buffer', function () {
    const buf = encodeMessage(sample(MessageType.App));
    const decoded = decodeMessage(buf);
    const before = Array.from(decoded.entries[1]!.data);
    buf.fill(0);
    assert.deepEqual(Array.from(decoded.entries[1]!.data), before);
  });
});

describe('Codec rejects malformed input with CodecError', function () {
  afterEach(reportSeedOnFailure);
  const packr = new Packr({ useRecords: false });
  const isCodecError = (e: unknown): boolean => e instanceof CodecError;

  it('wrong shapes and values', function () {
    const good = sample(MessageType.App);
    const bad: Array<[string, unknown]> = [
      ['unknown type', { ...good, type: 99 }],
      ['negative term', { ...good, term: -1 }],
      ['fractional index', { ...good, index: 1.5 }],
      ['unsafe integer', { ...good, commit: 2 ** 53 + 2 }],
      ['string term', { ...good, term: '1' }],
      ['entries not an array', { ...good, entries: 'x' }],
      ['entry data not bytes', { ...good, entries: [{ term: 1, index: 1, type: 0, data: 'x' }] }],
      ['unknown entry type', { ...good, entries: [{ term: 1, index: 1, type: 7, data: new Uint8Array() }] }],
      ['missing fields', { type: MessageType.App }],
      ['not an object', 42],
      ['null', null],
    ];
    for (const [what, value] of bad) {
      assert.throws(() => decodeMessage(packr.pack(value)), isCodecError, what);
    }
    assert.throws(() => decodeMessages(packr.pack({ not: 'an array' })), isCodecError);
    assert.throws(() => decodeConfChange(packr.pack({ type: 9, nodeId: 1, context: new Uint8Array() })), isCodecError);
    assert.throws(() => decodeHardState(packr.pack({ term: 1, vote: -2, commit: 0 })), isCodecError);
  });

  it('empty, truncated and random bytes', function () {
    assert.throws(() => decodeMessage(new Uint8Array(0)), isCodecError);
    const buf = encodeMessage(sample(MessageType.Snap));
    for (let n = 1; n < buf.length; n += Math.max(1, Math.floor(buf.length / 40))) {
      assert.throws(() => decodeMessage(buf.subarray(0, n)), isCodecError, `truncated to ${n} of ${buf.length}`);
    }
    const rnd = new SeededRandom(TEST_SEED);
    for (let i = 0; i < 500; i++) {
      const junk = new Uint8Array(1 + rnd.intn(64)).map(() => rnd.intn(256));
      try {
        decodeMessage(junk);
      } catch (e) {
        assert.ok(isCodecError(e), `random input ${Buffer.from(junk).toString('hex')} threw ${String(e)}`);
      }
    }
  });

  it('bit flips of valid encodings either decode to a valid message or throw CodecError', function () {
    const rnd = new SeededRandom(TEST_SEED + 1);
    for (const t of allTypes) {
      const buf = encodeMessage(sample(t));
      for (let i = 0; i < 60; i++) {
        const mutated = Uint8Array.from(buf);
        mutated[rnd.intn(mutated.length)]! ^= 1 << rnd.intn(8);
        try {
          const m = decodeMessage(mutated);
          assert.ok(allTypes.includes(m.type) && Number.isSafeInteger(m.term) && m.term >= 0, 'decoded message is valid');
        } catch (e) {
          assert.ok(isCodecError(e), `flip in ${MessageType[t]} threw ${String(e)} (seed ${TEST_SEED})`);
        }
      }
    }
  });
});
