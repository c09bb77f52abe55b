/**
 * Unit tests: msgpackr codec round trips (every message type) and validation, config
 * validation, SeededRandom.
 */
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import {
  CodecError,
  ConfigError,
  ConfChangeType,
  EntryType,
  MemoryStorage,
  MessageType,
  SeededRandom,
  validateConfig,
  encodeMessage,
  decodeMessage,
  encodeMessages,
  decodeMessages,
  encodeConfChange,
  decodeConfChange,
  encodeEntry,
  decodeEntry,
  encodeHardState,
  decodeHardState,
  encodeSnapshot,
  decodeSnapshot,
  type Message,
  type RaftConfig,
} from '../../src/raft/index.js';

const b = (...xs: number[]): Uint8Array => new Uint8Array(xs);

function fullMessage(type: MessageType): Message {
  return {
    type,
    from: 1,
    to: 2,
    term: 2 ** 53 - 1,
    logTerm: 7,
    index: 123456789012,
    entries: [
      { term: 7, index: 123456789013, type: EntryType.Normal, data: b(1, 2, 3) },
      { term: 7, index: 123456789014, type: EntryType.ConfChange, data: b() },
    ],
    commit: 99,
    reject: true,
    rejectHint: 42,
    snapshot: { metadata: { index: 5, term: 3, confState: { voters: [1, 2, 3], learners: [4] } }, data: b(9, 9) },
    context: b(0xff, 0),
  };
}

/** Plain-object view with Uint8Arrays as arrays (Buffer vs Uint8Array compare equal). */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Array.from(v) };
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

const allTypes = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number');

describe('codec', function () {
  for (const t of allTypes) {
    it(`round-trips ${MessageType[t]}`, function () {
      const m = fullMessage(t);
      const out = decodeMessage(encodeMessage(m));
      assert.deepEqual(plain(out), plain(m));
      assert.ok(out.context instanceof Uint8Array);
      const minimal: Message = { ...m, entries: [], snapshot: null, context: b(), reject: false };
      assert.deepEqual(plain(decodeMessage(encodeMessage(minimal))), plain(minimal));
    });
  }

  it('round-trips a batch of messages, entries, hard states, conf changes and snapshots', function () {
    const ms = allTypes.map(fullMessage);
    assert.deepEqual(plain(decodeMessages(encodeMessages(ms))), plain(ms));
    assert.deepEqual(decodeMessages(encodeMessages([])), []);
    const e = { term: 3, index: 4, type: EntryType.Normal, data: b(5) };
    assert.deepEqual(plain(decodeEntry(encodeEntry(e))), plain(e));
    const hs = { term: 3, vote: 2, commit: 1 };
    assert.deepEqual(decodeHardState(encodeHardState(hs)), hs);
    for (const type of [ConfChangeType.AddVoter, ConfChangeType.RemoveNode, ConfChangeType.AddLearner, ConfChangeType.PromoteLearner]) {
      const cc = { type, nodeId: 7, context: b(1) };
      assert.deepEqual(plain(decodeConfChange(encodeConfChange(cc))), plain(cc));
    }
    const s = fullMessage(MessageType.Snap).snapshot!;
    assert.deepEqual(plain(decodeSnapshot(encodeSnapshot(s))), plain(s));
  });

  it('does not alias the input buffer', function () {
    const buf = encodeMessage(fullMessage(MessageType.App));
    const m = decodeMessage(buf);
    const before = Array.from(m.entries[0]!.data);
    buf.fill(0);
    assert.deepEqual(Array.from(m.entries[0]!.data), before);
  });

  it('an independent decoder with the same structures reads the same bytes (no shared state)', function () {
    const buf = encodeMessage(fullMessage(MessageType.App));
    // A fresh Packr without the structures cannot read records it was not told about:
    // proves the structures are not embedded (compact) — and that our decoder has them.
    assert.throws(() => new Packr({ useRecords: true }).unpack(buf));
    assert.equal(decodeMessage(buf).index, 123456789012);
  });

  it('rejects malformed input with CodecError', function () {
    const good = fullMessage(MessageType.App);
    const bad = (patch: Record<string, unknown>): Uint8Array => new Packr({ useRecords: false }).pack({ ...good, ...patch });
    const cases: Array<[string, Uint8Array]> = [
      ['empty', b()],
      ['garbage', b(0xc1)],
      ['truncated', encodeMessage(good).subarray(0, 10)],
      ['trailing bytes', new Uint8Array([...encodeMessage(good), 0])],
      ['not an object', new Packr().pack(5)],
      ['negative term', bad({ term: -1 })],
      ['unsafe index', bad({ index: 2 ** 53 })],
      ['float commit', bad({ commit: 1.5 })],
      ['string from', bad({ from: '1' })],
      ['unknown type', bad({ type: 99 })],
      ['missing field', new Packr({ useRecords: false }).pack({ type: 10 })],
      ['context not bytes', bad({ context: 'x' })],
      ['reject not boolean', bad({ reject: 1 })],
      ['bad entry', bad({ entries: [{ term: 1, index: 1, type: 7, data: b() }] })],
      ['bad snapshot', bad({ snapshot: { metadata: { index: 1, term: 1, confState: { voters: [0], learners: [] } }, data: b() } })],
    ];
    for (const [name, buf] of cases) {
      assert.throws(() => decodeMessage(buf), CodecError, name);
    }
    assert.throws(() => decodeMessages(encodeMessage(good)), CodecError, 'a message is not a batch');
    assert.throws(() => decodeConfChange(encodeConfChange({ type: ConfChangeType.AddVoter, nodeId: 0, context: b() })), CodecError);
    assert.throws(() => decodeHardState(new Packr().pack({ term: 1, vote: 1 })), CodecError);
  });

  it('decoding is stateless: record definitions carried by hostile input never change how later messages decode', function () {
    // A peer's bytes may define msgpackr records of their own (in our shared slots or new ones);
    // msgpackr would keep them in the decoder's table and every later batch would mis-decode.
    const good: Message = {
      type: MessageType.Heartbeat, from: 1, to: 2, term: 3, logTerm: 0, index: 0, entries: [],
      commit: 1, reject: false, rejectHint: 0, snapshot: null, context: new Uint8Array(),
    };
    const encoded = encodeMessages([good]);
    const hostile = new Packr({ useRecords: true });
    const inputs = [
      hostile.pack([{ a: 1, b: 2 }]),
      hostile.pack({ type: 1, x: 2 }),
      hostile.pack([{ type: 10, from: 1 }, { type: 10, from: 1 }]),
      Uint8Array.from([0xd4, 0x72, 0x40]),
      Uint8Array.from([0x92, 0xd4, 0x72, 0x40, 0x91, 0xa1, 0x61, 0x01]),
    ];
    for (const [i, input] of inputs.entries()) {
      assert.throws(() => decodeMessages(input), CodecError, `hostile input ${i}`);
      const back = decodeMessages(encoded);
      assert.equal(back.length, 1, `after hostile input ${i}`);
      assert.deepEqual({ ...back[0]!, context: [...back[0]!.context] }, { ...good, context: [] }, `after hostile input ${i}`);
    }
  });
});

describe('validateConfig', function () {
  const base = (): RaftConfig => ({ id: 1, electionTick: 10, heartbeatTick: 1, storage: new MemoryStorage(), random: new SeededRandom(1) });

  it('fills in defaults', function () {
    const c = validateConfig(base());
    assert.equal(c.maxSizePerMsg, 1024 * 1024);
    assert.equal(c.maxInflightMsgs, 256);
    assert.equal(c.maxInflightBytes, 0);
    assert.equal(c.maxCommittedSizePerReady, c.maxSizePerMsg);
    assert.equal(c.readOnlyOption, 'safe');
    assert.equal(c.readIndexFanout, 'quorum');
    assert.equal(c.preVote, false);
    assert.equal(c.checkQuorum, false);
    assert.equal(c.applied, 0);
  });

  it('rejects invalid fields with ConfigError naming them', function () {
    const cases: Array<[Partial<RaftConfig> & Record<string, unknown>, RegExp]> = [
      [{ id: 0 }, /id/],
      [{ id: 1.5 }, /id/],
      [{ heartbeatTick: 0 }, /heartbeatTick/],
      [{ electionTick: 1 }, /electionTick/],
      [{ maxInflightMsgs: 0 }, /maxInflightMsgs/],
      [{ maxSizePerMsg: -1 }, /maxSizePerMsg/],
      [{ applied: -1 }, /applied/],
      [{ readOnlyOption: 'lease-based' }, /checkQuorum/],
      [{ readOnlyOption: 'fast' as 'safe' }, /readOnlyOption/],
      [{ readIndexFanout: 'some' as 'all' }, /readIndexFanout/],
      [{ preVote: 'yes' as unknown as boolean }, /preVote/],
      [{ storage: {} as MemoryStorage }, /storage/],
      [{ random: {} as SeededRandom }, /random/],
    ];
    for (const [patch, re] of cases) {
      assert.throws(() => validateConfig({ ...base(), ...patch } as RaftConfig), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(Object.keys(patch)));
    }
    assert.doesNotThrow(() => validateConfig({ ...base(), readOnlyOption: 'lease-based', checkQuorum: true }));
  });
});

describe('SeededRandom', function () {
  it('is deterministic per seed and stays in range', function () {
    const a = new SeededRandom(42);
    const c = new SeededRandom(42);
    const d = new SeededRandom(43);
    const xs = Array.from({ length: 100 }, () => a.intn(10));
    assert.deepEqual(Array.from({ length: 100 }, () => c.intn(10)), xs);
    assert.notDeepEqual(Array.from({ length: 100 }, () => d.intn(10)), xs);
    assert.ok(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 10));
    assert.equal(new Set(xs).size, 10, 'covers the whole range');
    for (let i = 0; i < 1000; i++) {
      const f = a.next();
      assert.ok(f >= 0 && f < 1);
    }
    assert.throws(() => a.intn(0));
  });
});
