import type { NodeId } from './types.js';

/** Outcome of a vote (or of ReadIndex heartbeat acknowledgements) in a majority config. */
export type VoteResult = 'won' | 'lost' | 'pending';

/** Votes needed for a majority of n voters. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * Tallies votes of `voters` (learners must not be passed). Missing voters are pending.
 * An empty config wins (nothing to ask), matching etcd.
 */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (let i = 0; i < voters.length; i++) {
    const v = votes.get(voters[i]!);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = majority(voters.length);
  if (granted >= q) return 'won';
  if (granted + missing >= q) return 'pending';
  return 'lost';
}

/**
 * The largest index acknowledged by a majority: sort the voters' match indexes descending
 * and take the q-th. `scratch` avoids an allocation per call on the hot path.
 */
export function majorityCommitIndex(
  voters: readonly NodeId[],
  matchOf: (id: NodeId) => number,
  scratch: number[],
): number {
  const n = voters.length;
  if (n === 0) return 0;
  scratch.length = n;
  // Insertion sort, descending: n is tiny (cluster size).
  for (let i = 0; i < n; i++) {
    const m = matchOf(voters[i]!);
    let j = i;
    while (j > 0 && scratch[j - 1]! < m) {
      scratch[j] = scratch[j - 1]!;
      j--;
    }
    scratch[j] = m;
  }
  return scratch[majority(n) - 1]!;
}
