/**
 * Streamed snapshots between two real transports (127.0.0.1): the body goes through in
 * CRC-checked chunks and arrives whole; a receiver sees a bad chunk, a wrong length, a missing
 * end or an oversized snapshot as a refused request (4xx), and a sender whose source comes up
 * short fails the snapshot. Raw requests are built by hand to hit each refusal.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import { encodeMessage } from '../../src/raft/codec.js';
import { MessageType, type Message } from '../../src/raft/types.js';
import {
  HEADER_CLUSTER_ID,
  HEADER_FROM,
  HEADER_SNAPSHOT_STREAM,
  HEADER_TO,
  SNAPSHOT_WIRE_CHUNK_BYTES,
  type SnapshotBody,
  type Transport,
} from '../../src/transport/index.js';
import { getWalBackend } from '../../src/wal/select-backend.js';
import { makeRandom, SEED } from '../wal/fixtures/backends.js';
import { CLUSTER, makeNode, msg, newInbox, urlOf, waitFor } from './helpers.js';

const crc32c = (b: Uint8Array, seed = 0) => getWalBackend().crc32c(b, seed) >>> 0;

function snapMessage(data = new Uint8Array([1, 2, 3])): Message {
  return msg(MessageType.Snap, 2, 1, {
    term: 2, // a leader's snapshot is never newer than its term
    snapshot: { metadata: { index: 50, term: 2, confState: { voters: [1, 2], learners: [] } }, data },
  });
}

/** `bytes` pseudo-random bytes in pieces of `piece`, the same for the same seed. */
function generated(bytes: number, piece: number, seed: number, shortBy = 0): SnapshotBody {
  return {
    bytes,
    async *open() {
      const random = makeRandom(seed);
      for (let off = 0; off < bytes - shortBy; off += piece) {
        const chunk = new Uint8Array(Math.min(piece, bytes - shortBy - off));
        for (let i = 0; i < chunk.length; i += 97) chunk[i] = Math.floor(random() * 256);
        yield chunk;
      }
    },
  };
}

interface Received {
  message: Message;
  bytes: number;
  crc: number;
  chunks: number;
  error: string | null;
}

describe(`transport: streamed snapshots (seed ${SEED})`, function () {
  let receiver: Transport;
  let received: Received[];
  const nodes: Transport[] = [];

  beforeEach(async function () {
    received = [];
    receiver = makeNode(1, newInbox(), {
      peers: new Map([[2, 'http://127.0.0.1:1']]),
      limits: { snapshotBytesMax: 16 * 1024 * 1024 },
      onSnapshotStream: async (message, body, bodyBytes) => {
        const r: Received = { message, bytes: 0, crc: 0, chunks: 0, error: null };
        received.push(r);
        try {
          for await (const c of body) {
            assert.ok(c.length <= SNAPSHOT_WIRE_CHUNK_BYTES);
            r.bytes += c.length;
            r.crc = crc32c(c, r.crc);
            r.chunks++;
          }
        } catch (err) {
          r.error = String(err);
          throw err;
        }
        assert.equal(r.bytes, bodyBytes);
      },
    });
    await receiver.start();
    nodes.push(receiver);
  });

  afterEach(async function () {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('streams the body after the message, in chunks, and reports success', async function () {
    const inbox = newInbox();
    const body = generated(5 * SNAPSHOT_WIRE_CHUNK_BYTES + 4321, 3 * SNAPSHOT_WIRE_CHUNK_BYTES, SEED);
    const sender = makeNode(2, inbox, { snapshotSource: () => body });
    await sender.start();
    nodes.push(sender);
    sender.addPeer(1, urlOf(receiver));
    sender.send([snapMessage()]);
    await waitFor(() => inbox.snapshotStatus.length === 1, 'snapshot status');
    assert.deepEqual(inbox.snapshotStatus, [{ id: 1, ok: true }]);
    let expectCrc = 0;
    for await (const c of body.open()) expectCrc = crc32c(c, expectCrc);
    assert.equal(received.length, 1);
    assert.equal(received[0]!.error, null);
    assert.equal(received[0]!.bytes, body.bytes);
    assert.equal(received[0]!.crc, expectCrc);
    assert.ok(received[0]!.chunks >= 6, `${received[0]!.chunks} chunks`);
    assert.deepEqual([...received[0]!.message.snapshot!.data], [1, 2, 3]);
    assert.equal(receiver.stats().server.receivedSnapshots, 1);
  });

  it('a sender whose body comes up short or is over snapshotBytesMax fails the snapshot', async function () {
    const inbox = newInbox();
    let body = generated(3 * SNAPSHOT_WIRE_CHUNK_BYTES, SNAPSHOT_WIRE_CHUNK_BYTES, SEED, 100);
    const sender = makeNode(2, inbox, { snapshotSource: () => body, limits: { snapshotBytesMax: 4 * SNAPSHOT_WIRE_CHUNK_BYTES } });
    await sender.start();
    nodes.push(sender);
    sender.addPeer(1, urlOf(receiver));
    sender.send([snapMessage()]);
    await waitFor(() => inbox.snapshotStatus.length === 1, 'snapshot status');
    assert.deepEqual(inbox.snapshotStatus, [{ id: 1, ok: false }]);
    await waitFor(() => received.length === 1 && received[0]!.error !== null, 'the receiver saw the stream fail');
    assert.equal(receiver.stats().server.receivedSnapshots, 0);

    body = generated(5 * SNAPSHOT_WIRE_CHUNK_BYTES, SNAPSHOT_WIRE_CHUNK_BYTES, SEED);
    await new Promise((resolve) => setTimeout(resolve, 150)); // past the backoff after the failure
    sender.send([snapMessage()]);
    await waitFor(() => inbox.snapshotStatus.length === 2, 'second snapshot status');
    assert.deepEqual(inbox.snapshotStatus[1], { id: 1, ok: false });
    assert.equal(received.length, 1, 'never sent');
  });

  /** Posts a hand-built stream; resolves with the answer's status and body. */
  function post(parts: Buffer[]): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: receiver.address().port,
        method: 'POST',
        path: '/raft/snapshot',
        headers: { [HEADER_CLUSTER_ID]: CLUSTER, [HEADER_FROM]: '2', [HEADER_TO]: '1', [HEADER_SNAPSHOT_STREAM]: '1' },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      });
      req.on('error', reject);
      for (const p of parts) req.write(p);
      req.end();
    });
  }

  function preamble(message: Uint8Array, bodyBytes: number, magic = 0x53534b52): Buffer {
    const b = Buffer.alloc(16);
    b.writeUInt32LE(magic, 0);
    b.writeUInt32LE(message.byteLength, 4);
    b.writeBigUInt64LE(BigInt(bodyBytes), 8);
    return Buffer.concat([b, message]);
  }

  function frame(chunk: Buffer, crc = crc32c(chunk)): Buffer {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(chunk.length, 0);
    h.writeUInt32LE(crc, 4);
    return Buffer.concat([h, chunk]);
  }

  const END = Buffer.alloc(8);

  it('refuses a bad chunk, a wrong total, a missing end, trailing bytes, bad magic and oversize', async function () {
    const m = Buffer.from(encodeMessage(snapMessage()));
    const a = Buffer.alloc(1000, 7);
    const b = Buffer.alloc(500, 9);
    const good = await post([preamble(m, 1500), frame(a), frame(b), END]);
    assert.equal(good.status, 204, good.body);

    const cases: Array<[string, Buffer[], number, RegExp]> = [
      ['flipped crc', [preamble(m, 1500), frame(a), frame(b, crc32c(b) ^ 1), END], 400, /crc32c mismatch/],
      ['short total', [preamble(m, 1600), frame(a), frame(b), END], 400, /ended after 1500 of the 1600/],
      ['long total', [preamble(m, 1200), frame(a), frame(b), END], 400, /more than the 1200 bytes/],
      ['no end frame', [preamble(m, 1500), frame(a), frame(b)], 400, /truncated/],
      ['trailing bytes', [preamble(m, 1500), frame(a), frame(b), END, Buffer.from([1])], 400, /after the end/],
      ['bad magic', [preamble(m, 1500, 0x12345678), frame(a), frame(b), END], 400, /bad magic/],
      ['oversize', [preamble(m, 17 * 1024 * 1024)], 413, /exceeds snapshotBytesMax/],
      ['huge chunk length', [preamble(m, 1500), Buffer.from([0, 0, 0, 1, 0, 0, 0, 0])], 400, /exceeds/],
      ['not a Snap', [preamble(Buffer.from(encodeMessage(msg(MessageType.Heartbeat, 2, 1))), 0), END], 400, /expected a Snap/],
    ];
    for (const [name, parts, status, reason] of cases) {
      const answer = await post(parts);
      assert.equal(answer.status, status, `${name}: ${answer.body}`);
      assert.match(answer.body, reason, name);
    }
    assert.equal(receiver.stats().server.receivedSnapshots, 1, 'only the good one counted');
    const good2 = await post([preamble(m, 1500), frame(a), frame(b), END]);
    assert.equal(good2.status, 204, 'still serving');
  });
});
