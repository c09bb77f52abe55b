/**
 * Test-only switches that put known, fixed bugs back into the real code, so the whole-node
 * simulator (test/simnode) can show it still finds each of them (its "teeth"; see
 * docs/simulation.md). Production never sets them: every switch is false unless the simulator
 * turns it on, and each is read once per operation at its bug site (one property read, never
 * on a per-byte path).
 *
 * Also the simulator's handle on the little randomness the storage code draws itself (WAL
 * segment salts), so a seed replays byte for byte.
 */

export interface Mutations {
  /** Bug 1 (fixed in fcca012): a WAL segment cut writes the hard state of the save that
   * triggers it (or of saves queued behind it) into the new segment before that save's
   * entries are on disk. Site: src/wal/wal.ts save(). */
  walCutHardStateAhead: boolean;
  /** Bug 2 (fixed in d5fb536 + dd24da6): proposals re-sendable and applied as often as they are
   * appended. Sites: src/node/runtime.ts applyCommitted (the de-dup is skipped),
   * src/transport/peer.ts (Prop requests idempotent, so undici re-sends them; the simulated
   * network re-sends them after a connection drop). */
  proposalDuplicates: boolean;
  /** Bug 3 (fixed in 8734424): no boundary check of a peer message's content. Site:
   * src/raft/message-check.ts messageProblem (used by the transport and RawNode.step) accepts
   * everything. */
  peerMessageCheckOff: boolean;
  /** Bug 4 (fixed in 9bcfa81): a hole in the last segment followed by any valid frame is
   * mid-log corruption (recovery refuses to start), even when it is a torn final batch. Site:
   * src/wal/frame.ts findLaterCommit (the recovery decision's evidence). */
  tornBatchAsCorruption: boolean;
  /** Bug 5 (fixed in 8734424): the only voter answers ReadIndex with its commit index at once,
   * before committing an entry of its term. Site: src/raft/raft.ts stepLeader. */
  singleVoterReadIndexShortcut: boolean;
}

export type MutationName = keyof Mutations;

export const MUTATION_NAMES: readonly MutationName[] = [
  'walCutHardStateAhead',
  'proposalDuplicates',
  'peerMessageCheckOff',
  'tornBatchAsCorruption',
  'singleVoterReadIndexShortcut',
];

/** Read by the bug sites; written only by the simulator (setMutation / resetMutations). */
export const mutations: Readonly<Mutations> = {
  walCutHardStateAhead: false,
  proposalDuplicates: false,
  peerMessageCheckOff: false,
  tornBatchAsCorruption: false,
  singleVoterReadIndexShortcut: false,
};

export function setMutation(name: MutationName, on: boolean): void {
  (mutations as Mutations)[name] = on;
}

export function resetMutations(): void {
  for (const name of MUTATION_NAMES) (mutations as Mutations)[name] = false;
}

/** Where the WAL draws segment salts from: null = crypto random (production); the simulator
 * sets a seeded source so that its disk contents depend on the seed alone. */
export const storageRandomness: { salt: (() => number) | null } = { salt: null };
