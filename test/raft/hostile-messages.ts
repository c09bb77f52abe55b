/**
 * Generator of hostile peer messages for fuzz tests of the core (scenario-hostile.test.ts) and
 * of a running node (test/node/hostile-peer.test.ts): messages that decode fine but that no
 * correct node sends (mutated indexes, terms, types, entry types, ConfChange data, snapshot
 * metadata), each labelled with whether the boundary must refuse it.
 *
 * What it does NOT generate: plausible forgeries, i.e. messages a correct node might have
 * sent that would make the receiver commit or count what the real leader never replicated (an
 * append that matches the receiver's log with new entries and a higher commit index, an ack for
 * entries the follower does not have, a granted vote, a valid membership change). Without
 * authenticating peers nothing can tell those from the real thing, and obeying them can make
 * logs diverge (a node then stops when it sees a committed entry change, which is right). That
 * is what mutual TLS is for; these tests check that input checks hold without it: anything the
 * generator produces is either refused or harmless to obey.
 */

import { encodeConfChange, SeededRandom } from '../../src/raft/index.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  type Entry,
  type Message,
  type NodeId,
  type Snapshot,
} from '../../src/raft/types.js';

/** What the generator knows about the receiver and the cluster (read just before sending). */
export interface ReceiverView {
  id: NodeId;
  term: number;
  commit: number;
  lastIndex: number;
  /** Every member, the receiver included. */
  members: NodeId[];
  /** Commit index of each member (an ack from it for up to there is true). */
  commitOf(id: NodeId): number;
}

export interface HostileMessage {
  m: Message;
  /** messageProblem must flag it (the transport answers 400). */
  refused: boolean;
  /** Only the runtime's own check (RaftNode's checkMessage) refuses it: the core accepts it. */
  runtimeRefused: boolean;
  what: string;
  /** Where it goes: the batch endpoint, or the snapshot endpoint (Snap). */
  snapshot: boolean;
}

export interface GeneratorOptions {
  /** Bytes for the data of an acceptable snapshot (the runtime needs its envelope). */
  snapshotData(): Uint8Array;
  /** Also produce messages only the runtime's own check refuses. */
  runtimeChecks: boolean;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function base(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return {
    type, from, to, term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
    snapshot: null, context: new Uint8Array(0),
  };
}

export class HostileGenerator {
  private readonly r: SeededRandom;

  constructor(seed: number, private readonly opts: GeneratorOptions) {
    this.r = new SeededRandom(seed);
  }

  private int(lo: number, hi: number): number {
    return lo + this.r.intn(hi - lo + 1);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.r.intn(xs.length)]!;
  }

  private bytes(max: number): Uint8Array {
    const b = new Uint8Array(this.int(0, max));
    for (let i = 0; i < b.length; i++) b[i] = this.r.intn(256);
    return b;
  }

  /** A term the receiver ignores, accepts, or moves up to. */
  private term(v: ReceiverView): number {
    return this.pick([Math.max(1, v.term - 1), v.term, v.term, v.term + this.int(1, 3)]);
  }

  /** An index no correct node sends: huge, or beyond the wire limit's reach of the core. */
  private wildNumber(): number {
    return this.pick([2 ** 52 + 1, Number.MAX_SAFE_INTEGER, 2 ** 40, 0]);
  }

  private normalEntries(from: number, n: number, term: number): Entry[] {
    return Array.from({ length: n }, (_, i) => ({ term, index: from + i, type: EntryType.Normal, data: this.bytes(24) }));
  }

  private garbageConfChange(): Uint8Array {
    const valid = encodeConfChange({ type: ConfChangeType.AddVoter, nodeId: this.int(1, 9), context: new Uint8Array(0) });
    return this.pick([
      this.bytes(16),
      valid.subarray(0, Math.max(1, valid.length - this.int(1, 3))),
      new Uint8Array([...valid, ...valid, ...valid]), // three values: "expected one value, found 3"
      enc('not msgpack at all'),
      new Uint8Array(0),
    ]);
  }

  private senderOtherThan(v: ReceiverView): NodeId {
    const others = v.members.filter((id) => id !== v.id);
    return this.pick(others);
  }

  next(v: ReceiverView): HostileMessage {
    const from = this.senderOtherThan(v);
    const to = v.id;
    const cases: Array<() => HostileMessage> = [
      // ---- refused by the shared check
      () => {
        const m = base(MessageType.App, from, to, v.term);
        m.index = v.lastIndex;
        m.logTerm = v.term;
        m.entries = this.normalEntries(v.lastIndex + this.pick([0, 2, 5]), 2, v.term);
        return { m, refused: true, runtimeRefused: false, what: 'App entries not starting at index+1', snapshot: false };
      },
      () => {
        const m = base(MessageType.App, from, to, v.term);
        m.index = v.lastIndex;
        m.logTerm = v.term;
        m.entries = [...this.normalEntries(v.lastIndex + 1, 1, v.term), ...this.normalEntries(v.lastIndex + 3, 1, v.term)];
        return { m, refused: true, runtimeRefused: false, what: 'App entries with a gap', snapshot: false };
      },
      () => {
        const m = base(MessageType.App, from, to, v.term);
        m.index = v.lastIndex;
        m.logTerm = Math.max(0, v.term - 1);
        m.entries = this.normalEntries(v.lastIndex + 1, 2, v.term);
        m.entries[this.r.intn(2)]!.term = this.pick([v.term + 5, 0]);
        if (m.entries[0]!.term === 0 && m.logTerm === 0) m.entries[0]!.term = v.term + 5;
        return { m, refused: true, runtimeRefused: false, what: 'App entry terms above the message term or decreasing', snapshot: false };
      },
      () => {
        const m = base(this.pick([MessageType.App, MessageType.Prop]), from, to, 0);
        if (m.type === MessageType.App) {
          m.term = v.term;
          m.index = v.lastIndex + 1000; // never matches: even if it were accepted nothing is appended
          m.logTerm = v.term;
          m.entries = this.normalEntries(m.index + 1, 1, v.term);
        } else {
          m.entries = this.normalEntries(0, 1, 0);
        }
        m.entries[0]!.type = EntryType.ConfChange;
        m.entries[0]!.data = this.garbageConfChange();
        return { m, refused: true, runtimeRefused: false, what: `${MessageType[m.type]} with an undecodable ConfChange`, snapshot: false };
      },
      () => {
        const termless = this.pick([MessageType.Prop, MessageType.ReadIndex]);
        const m = base(termless, from, to, v.term + this.int(0, 2));
        const other = base(this.pick([MessageType.Vote, MessageType.VoteResp, MessageType.Heartbeat, MessageType.AppResp, MessageType.TimeoutNow]), from, to, 0);
        const chosen = this.r.intn(2) === 0 ? m : other;
        return { m: chosen, refused: true, runtimeRefused: false, what: `${MessageType[chosen.type]} with the wrong term`, snapshot: false };
      },
      () => {
        const m = base(MessageType.Snap, from, to, v.term);
        const voters = v.members.slice();
        const variants: Array<[string, Snapshot]> = [
          ['index 0', { metadata: { index: 0, term: v.term, confState: { voters, learners: [] } }, data: this.opts.snapshotData() }],
          ['term 0', { metadata: { index: v.commit + 1, term: 0, confState: { voters, learners: [] } }, data: this.opts.snapshotData() }],
          ['term above the message', { metadata: { index: v.commit + 1, term: v.term + 1, confState: { voters, learners: [] } }, data: this.opts.snapshotData() }],
          ['no voters', { metadata: { index: v.commit + 1, term: v.term, confState: { voters: [], learners: voters } }, data: this.opts.snapshotData() }],
          ['a voter twice', { metadata: { index: v.commit + 1, term: v.term, confState: { voters: [...voters, voters[0]!], learners: [] } }, data: this.opts.snapshotData() }],
          ['a voter also a learner', { metadata: { index: v.commit + 1, term: v.term, confState: { voters, learners: [voters[0]!] } }, data: this.opts.snapshotData() }],
        ];
        const [what, snap] = this.pick(variants);
        m.snapshot = snap;
        return { m, refused: true, runtimeRefused: false, what: `Snap: ${what}`, snapshot: true };
      },
      () => {
        const m = base(this.pick([MessageType.Heartbeat, MessageType.Vote, MessageType.AppResp, MessageType.ReadIndexResp]), from, to, v.term);
        if (this.r.intn(2) === 0) {
          m.entries = this.normalEntries(1, 1, v.term);
          return { m, refused: true, runtimeRefused: false, what: `${MessageType[m.type]} carrying entries`, snapshot: false };
        }
        m.snapshot = { metadata: { index: 1, term: 1, confState: { voters: v.members, learners: [] } }, data: new Uint8Array(0) };
        return { m, refused: true, runtimeRefused: false, what: `${MessageType[m.type]} carrying a snapshot`, snapshot: false };
      },
      () => {
        const m = base(this.pick([MessageType.App, MessageType.Heartbeat, MessageType.Vote, MessageType.AppResp]), from, to, v.term);
        const field = this.pick(['term', 'index', 'commit', 'logTerm'] as const);
        m[field] = this.pick([2 ** 52 + 1, Number.MAX_SAFE_INTEGER]);
        return { m, refused: true, runtimeRefused: false, what: `${MessageType[m.type]} with ${field} beyond 2^52`, snapshot: false };
      },
      () => {
        const m = base(this.pick([MessageType.Vote, MessageType.PreVote]), from, to, v.term + 1);
        m.logTerm = m.term + this.int(1, 5);
        m.index = v.lastIndex;
        return { m, refused: true, runtimeRefused: false, what: `${MessageType[m.type]} with a last log term above its term`, snapshot: false };
      },

      // ---- obeyed or ignored by the core, harmlessly
      () => {
        const term = this.term(v);
        const m = base(MessageType.App, from, to, term);
        m.index = v.lastIndex + this.int(100, 10_000); // the receiver's log has no such entry
        m.logTerm = this.int(0, term);
        m.entries = this.normalEntries(m.index + 1, this.int(0, 3), term);
        m.commit = this.pick([0, v.commit, this.wildNumber() % (2 ** 52)]);
        return { m, refused: false, runtimeRefused: false, what: 'App that does not match the log', snapshot: false };
      },
      () => {
        const m = base(MessageType.App, from, to, Math.max(1, v.term - 1));
        if (m.term === v.term) return this.next(v); // nothing is stale at term 1
        m.index = this.int(0, v.lastIndex);
        m.logTerm = this.int(0, m.term);
        m.entries = this.normalEntries(m.index + 1, this.int(0, 2), m.term);
        m.commit = this.pick([0, v.commit, v.lastIndex + 50]);
        return { m, refused: false, runtimeRefused: false, what: 'App of an older term', snapshot: false };
      },
      () => {
        const m = base(MessageType.Heartbeat, from, to, this.term(v));
        // Beyond the log by a margin no traffic closes meanwhile: this must not commit anything.
        m.commit = this.pick([0, v.commit, v.lastIndex + this.int(1000, 100_000)]);
        m.context = this.bytes(8);
        return { m, refused: false, runtimeRefused: false, what: 'Heartbeat (commit 0, ours, or beyond our log)', snapshot: false };
      },
      () => {
        const m = base(MessageType.AppResp, from, to, this.term(v));
        const kind = this.r.intn(3);
        if (kind === 0) {
          m.reject = true;
          m.index = this.int(0, v.lastIndex + 10);
          m.rejectHint = this.int(0, v.lastIndex + 10);
          m.logTerm = this.int(0, m.term);
        } else if (kind === 1) {
          m.index = v.lastIndex + this.int(1000, 100_000); // an ack for entries the leader never had
        } else {
          m.index = this.int(0, v.commitOf(from)); // true: the sender has these
        }
        return { m, refused: false, runtimeRefused: false, what: `AppResp (${['reject', 'beyond the log', 'stale'][kind]})`, snapshot: false };
      },
      () => {
        const m = base(MessageType.HeartbeatResp, from, to, this.term(v));
        m.context = this.bytes(13);
        m.rejectHint = this.int(0, 1_000_000);
        return { m, refused: false, runtimeRefused: false, what: 'HeartbeatResp with an unknown context', snapshot: false };
      },
      () => {
        const m = base(this.pick([MessageType.Vote, MessageType.PreVote]), from, to, this.term(v));
        m.logTerm = this.int(0, m.term);
        m.index = this.int(0, v.lastIndex + 5);
        return { m, refused: false, runtimeRefused: false, what: `${MessageType[m.type]} request`, snapshot: false };
      },
      () => {
        const m = base(this.pick([MessageType.VoteResp, MessageType.PreVoteResp]), from, to, this.term(v));
        m.reject = true; // a forged grant could elect two leaders in one term: not generated
        return { m, refused: false, runtimeRefused: false, what: `${MessageType[m.type]} rejection`, snapshot: false };
      },
      () => {
        const m = base(MessageType.TimeoutNow, from, to, this.term(v));
        return { m, refused: false, runtimeRefused: false, what: 'TimeoutNow', snapshot: false };
      },
      () => {
        const m = base(MessageType.ReadIndex, this.pick(v.members), to, 0);
        m.context = this.bytes(16);
        return { m, refused: false, runtimeRefused: false, what: 'forwarded ReadIndex', snapshot: false };
      },
      () => {
        const m = base(MessageType.ReadIndexResp, from, to, v.term);
        m.index = this.int(0, v.lastIndex + 100);
        m.context = this.bytes(13);
        return { m, refused: false, runtimeRefused: false, what: 'ReadIndexResp for nobody', snapshot: false };
      },
      () => {
        const m = base(MessageType.TransferLeader, from, to, v.term);
        m.index = this.pick([...v.members, 77, 0]);
        return { m, refused: false, runtimeRefused: false, what: 'TransferLeader', snapshot: false };
      },
      () => {
        const m = base(MessageType.Prop, this.pick(v.members.filter((id) => id !== v.id)), to, 0);
        m.entries = this.normalEntries(this.int(0, 5), this.int(1, 3), this.int(0, 3));
        return { m, refused: false, runtimeRefused: false, what: 'forwarded Prop of normal entries', snapshot: false };
      },
      () => {
        const term = this.term(v);
        const m = base(MessageType.Snap, from, to, term);
        m.snapshot = {
          // At or below the receiver's commit index: it already has all of it.
          metadata: { index: this.int(1, Math.max(1, v.commit)), term: this.int(1, term), confState: { voters: v.members, learners: [] } },
          data: this.opts.snapshotData(),
        };
        if (v.commit === 0) return this.next(v);
        return { m, refused: false, runtimeRefused: false, what: 'Snap behind the receiver', snapshot: true };
      },
    ];
    if (this.opts.runtimeChecks) {
      cases.push(
        () => {
          const m = base(MessageType.Prop, this.pick(v.members.filter((id) => id !== v.id)), to, 0);
          const url = this.pick(['ftp://127.0.0.1:1', 'not a url', 'http://[::1', 'https://127.0.0.1:9']);
          // As this runtime writes it (JSON), or bare as raftexample does (only a URL is read so).
          const bare = url.includes('://') && this.r.intn(2) === 0;
          const context = bare ? enc(url) : enc(JSON.stringify({ url }));
          const type = this.pick([ConfChangeType.AddVoter, ConfChangeType.AddLearner]);
          m.entries = [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange({ type, nodeId: this.int(10, 20), context }) }];
          return { m, refused: true, runtimeRefused: true, what: `Prop of a ConfChange with peer URL ${JSON.stringify(url)}`, snapshot: false };
        },
        () => {
          const m = base(MessageType.Snap, from, to, v.term);
          m.snapshot = {
            metadata: { index: v.lastIndex + this.int(1, 100), term: v.term, confState: { voters: v.members, learners: [] } },
            data: this.pick([this.bytes(40), enc('RKN1'), new Uint8Array([0x52, 0x4b, 0x4e, 0x31, 200, 0, 0, 0])]),
          };
          return { m, refused: true, runtimeRefused: true, what: 'Snap whose data the runtime did not write', snapshot: true };
        },
      );
    }
    return this.pick(cases)();
  }
}
