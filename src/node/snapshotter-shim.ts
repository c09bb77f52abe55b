/**
 * TEMPORARY stand-in for src/snap's Snapshotter, used only until that module lands (another
 * helper is writing it). Same shape as what the runtime needs: save (atomic, CRC, fsync),
 * loadNewest (skipping corrupt files), purge. Delete once storage.ts imports '../snap/index.js'.
 */

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';

import { decodeSnapshot, encodeSnapshot } from '../raft/index.js';
import type { Snapshot } from '../raft/types.js';
import { crc32c } from '../wal/crc32c.js';

const SUFFIX = '.snap';

function fileName(term: number, index: number): string {
  return `${term.toString(16).padStart(16, '0')}-${index.toString(16).padStart(16, '0')}${SUFFIX}`;
}

function parseName(name: string): { term: number; index: number } | null {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(name);
  if (m === null) return null;
  return { term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16) };
}

export class Snapshotter {
  constructor(
    private readonly dir: string,
    private readonly options: { logger: { warn(message: string): void } },
  ) {}

  async save(snap: Snapshot): Promise<void> {
    const body = encodeSnapshot(snap);
    const out = Buffer.alloc(4 + body.length);
    out.writeUInt32LE(crc32c(body, 0), 0);
    out.set(body, 4);
    const final = path.join(this.dir, fileName(snap.metadata.term, snap.metadata.index));
    const tmp = `${final}.tmp`;
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(out);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, final);
    const dfd = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } catch {
      // directory fsync unsupported here: the WAL's dirSync policy already warned
    } finally {
      fs.closeSync(dfd);
    }
  }

  private async names(): Promise<{ name: string; index: number }[]> {
    const out: { name: string; index: number }[] = [];
    for (const name of await fsp.readdir(this.dir)) {
      const p = parseName(name);
      if (p !== null) out.push({ name, index: p.index });
    }
    return out.sort((a, b) => b.index - a.index);
  }

  async loadNewest(filter: { maxIndex: number }): Promise<Snapshot | null> {
    for (const { name, index } of await this.names()) {
      if (index > filter.maxIndex) continue;
      const file = path.join(this.dir, name);
      const bytes = await fsp.readFile(file);
      try {
        if (bytes.length < 4 || bytes.readUInt32LE(0) !== crc32c(bytes.subarray(4), 0)) throw new Error('crc mismatch');
        return decodeSnapshot(new Uint8Array(bytes.subarray(4)));
      } catch (err) {
        this.options.logger.warn(`snapshot ${file} is corrupt (${(err as Error).message}); renamed to .broken`);
        await fsp.rename(file, `${file}.broken`);
      }
    }
    return null;
  }

  async purge(keep: number): Promise<void> {
    const names = await this.names();
    for (const { name } of names.slice(keep)) await fsp.rm(path.join(this.dir, name), { force: true });
  }
}
