import type { NodeId, RandomSource, Storage } from './types.js';
import { ConfigError } from './errors.js';

export interface RaftLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export type ReadOnlyOption = 'safe' | 'lease-based';
/** Which voters a safe ReadIndex round asks at once; see RaftConfig.readIndexFanout. */
export type ReadIndexFanout = 'quorum' | 'all';

/** The one check of a ReadIndexFanout value, for every layer that accepts one. */
export function isReadIndexFanout(value: unknown): value is ReadIndexFanout {
  return value === 'quorum' || value === 'all';
}

export interface RaftConfig {
  /** This node's id: a positive safe integer. */
  id: NodeId;
  /** T: a follower that hears nothing for a randomized timeout in [T, 2T) campaigns. */
  electionTick: number;
  /** The leader sends heartbeats every heartbeatTick ticks; must be < electionTick. */
  heartbeatTick: number;
  storage: Storage;
  /** The only source of randomness the core uses (election timeouts). */
  random: RandomSource;
  /** Last applied index at restart (default 0). Entries ≤ applied are not handed out again. */
  applied?: number;
  /** Max bytes of entries per App message (default 1 MiB); one entry is always allowed. */
  maxSizePerMsg?: number;
  /** Max in-flight App messages per follower in replicate state (default 256). */
  maxInflightMsgs?: number;
  /** Max in-flight bytes per follower (default 0 = unlimited). By Little's law, about
   * bandwidth × RTT is enough to keep the pipe full. */
  maxInflightBytes?: number;
  /** The leader refuses proposals once uncommitted payload exceeds this (0 = unlimited). */
  maxUncommittedEntriesSize?: number;
  /** Bytes of committed entries handed out per Ready (default = maxSizePerMsg). */
  maxCommittedSizePerReady?: number;
  /** Run a pre-election round so a partitioned node does not disrupt the cluster (default false). */
  preVote?: boolean;
  /** A leader without quorum contact within an election timeout steps down, and followers
   * ignore votes while their leader is live (default false). */
  checkQuorum?: boolean;
  /** 'lease-based' relies on bounded clock drift and requires checkQuorum (default 'safe'). */
  readOnlyOption?: ReadOnlyOption;
  /**
   * Who gets the heartbeat of a safe ReadIndex round. 'quorum' (default): just enough voters to
   * make a quorum with the leader, those whose acks last counted for a read first; a
   * round they leave unanswered is asked of every member by the next heartbeat broadcast (at
   * most heartbeatTick later), which carries the newest pending read's context. 'all': every
   * member at once, as etcd does. Safety is the same: a read completes only on a quorum's acks.
   */
  readIndexFanout?: ReadIndexFanout;
  /** Followers drop proposals instead of forwarding them to the leader (default false). */
  disableProposalForwarding?: boolean;
  logger?: RaftLogger;
}

export interface ValidatedConfig {
  id: NodeId;
  electionTick: number;
  heartbeatTick: number;
  storage: Storage;
  random: RandomSource;
  applied: number;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  maxUncommittedEntriesSize: number;
  maxCommittedSizePerReady: number;
  preVote: boolean;
  checkQuorum: boolean;
  readOnlyOption: ReadOnlyOption;
  readIndexFanout: ReadIndexFanout;
  disableProposalForwarding: boolean;
  logger: RaftLogger;
}

const noop = (): void => {};
export const NOOP_LOGGER: RaftLogger = { debug: noop, info: noop, warn: noop };

const DEFAULT_MAX_SIZE_PER_MSG = 1024 * 1024;
const DEFAULT_MAX_INFLIGHT_MSGS = 256;

function positiveInt(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(`${name} must be a positive safe integer, got ${String(value)}`);
  }
  return value;
}

function nonNegativeInt(value: unknown, name: string, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ConfigError(`${name} must be a non-negative safe integer, got ${String(value)}`);
  }
  return value;
}

function bool(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new ConfigError(`${name} must be a boolean`);
  return value;
}

/** Checks a RaftConfig and fills in defaults. Throws ConfigError with the offending field. */
export function validateConfig(c: RaftConfig): ValidatedConfig {
  if (c === null || typeof c !== 'object') throw new ConfigError('config must be an object');
  const id = positiveInt(c.id, 'id');
  const heartbeatTick = positiveInt(c.heartbeatTick, 'heartbeatTick');
  const electionTick = positiveInt(c.electionTick, 'electionTick');
  if (electionTick <= heartbeatTick) {
    throw new ConfigError(
      `electionTick (${electionTick}) must be greater than heartbeatTick (${heartbeatTick})`,
    );
  }
  if (!c.storage || typeof c.storage.initialState !== 'function') {
    throw new ConfigError('storage must implement the Storage interface');
  }
  if (!c.random || typeof c.random.intn !== 'function') {
    throw new ConfigError('random must implement RandomSource');
  }
  const applied = nonNegativeInt(c.applied, 'applied', 0);
  const maxSizePerMsg = nonNegativeInt(c.maxSizePerMsg, 'maxSizePerMsg', DEFAULT_MAX_SIZE_PER_MSG);
  const maxInflightMsgs =
    c.maxInflightMsgs === undefined
      ? DEFAULT_MAX_INFLIGHT_MSGS
      : positiveInt(c.maxInflightMsgs, 'maxInflightMsgs');
  const maxInflightBytes = nonNegativeInt(c.maxInflightBytes, 'maxInflightBytes', 0);
  // maxInflightBytes < maxSizePerMsg is allowed (etcd refuses it): the window then simply
  // fills after one message.
  const maxUncommittedEntriesSize = nonNegativeInt(
    c.maxUncommittedEntriesSize,
    'maxUncommittedEntriesSize',
    0,
  );
  const maxCommittedSizePerReady = nonNegativeInt(
    c.maxCommittedSizePerReady,
    'maxCommittedSizePerReady',
    maxSizePerMsg,
  );
  const preVote = bool(c.preVote, 'preVote');
  const checkQuorum = bool(c.checkQuorum, 'checkQuorum');
  const disableProposalForwarding = bool(c.disableProposalForwarding, 'disableProposalForwarding');
  const readOnlyOption = c.readOnlyOption ?? 'safe';
  if (readOnlyOption !== 'safe' && readOnlyOption !== 'lease-based') {
    throw new ConfigError(`readOnlyOption must be 'safe' or 'lease-based', got ${String(readOnlyOption)}`);
  }
  if (readOnlyOption === 'lease-based' && !checkQuorum) {
    throw new ConfigError("readOnlyOption 'lease-based' requires checkQuorum: true");
  }
  const readIndexFanout = c.readIndexFanout ?? 'quorum';
  if (!isReadIndexFanout(readIndexFanout)) {
    throw new ConfigError(`readIndexFanout must be 'quorum' or 'all', got ${String(readIndexFanout)}`);
  }
  const logger = c.logger ?? NOOP_LOGGER;
  return {
    id,
    electionTick,
    heartbeatTick,
    storage: c.storage,
    random: c.random,
    applied,
    maxSizePerMsg,
    maxInflightMsgs,
    maxInflightBytes,
    maxUncommittedEntriesSize,
    maxCommittedSizePerReady,
    preVote,
    checkQuorum,
    readOnlyOption,
    readIndexFanout,
    disableProposalForwarding,
    logger,
  };
}
