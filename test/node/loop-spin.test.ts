import assert from 'node:assert/strict';
import { LoopSpinner, type LoopSpinClock } from '../../src/node/loop-spin.js';
import { nativeSchedYield } from '../../src/wal/native-backend.js';

/** A clock whose time moves only when told, and a queue of scheduled turns run by hand. */
class ManualLoop implements LoopSpinClock {
  t = 0;
  queue: Array<() => void> = [];
  now(): number {
    return this.t;
  }
  schedule(fn: () => void): void {
    this.queue.push(fn);
  }
  /** Runs one loop turn after `stepMs`; false when nothing was scheduled. */
  turn(stepMs: number): boolean {
    const fn = this.queue.shift();
    if (fn === undefined) return false;
    this.t += stepMs;
    fn();
    return true;
  }
}

describe('LoopSpinner', function () {
  it('spins for the window after a poke, yielding the CPU every idle turn, then stops', function () {
    const loop = new ManualLoop();
    let yields = 0;
    const spinner = new LoopSpinner(() => yields++, loop);
    spinner.poke(1000); // 1 ms
    assert.equal(spinner.active, true);
    let turns = 0;
    while (loop.turn(0.1)) turns++;
    assert.equal(spinner.active, false);
    assert.equal(yields, spinner.turns - 1, 'every idle turn yields; the first follows the poke');
    assert.ok(spinner.turns >= 9 && spinner.turns <= 10, `turns ${spinner.turns}`);
    assert.equal(turns, spinner.turns + 1, 'the last turn only notices the window is over');
  });

  it('a turn right after a poke (the loop had work) does not give the CPU away', function () {
    const loop = new ManualLoop();
    let yields = 0;
    const spinner = new LoopSpinner(() => yields++, loop);
    spinner.poke(1000);
    loop.turn(0.1);
    assert.equal(yields, 0);
    loop.turn(0.1);
    assert.equal(yields, 1);
    spinner.poke(1000);
    loop.turn(0.1);
    assert.equal(yields, 1, 'busy again');
  });

  it('a poke while spinning extends the window; a shorter one does not cut it', function () {
    const loop = new ManualLoop();
    const spinner = new LoopSpinner(() => {}, loop);
    spinner.poke(1000);
    loop.turn(0.5);
    spinner.poke(1000); // until t = 1.5
    spinner.poke(100); // would end at 0.6: ignored
    while (loop.turn(0.1)) {}
    assert.ok(loop.t >= 1.5 && loop.t < 1.7, `stopped at ${loop.t}`);
    assert.equal(loop.queue.length, 0, 'one chain of turns, not one per poke');
  });

  it('never spins with a zero window or without sched_yield', function () {
    const loop = new ManualLoop();
    new LoopSpinner(() => {}, loop).poke(0);
    new LoopSpinner(null, loop).poke(1000);
    assert.equal(loop.queue.length, 0);
  });

  it('the native addon provides sched_yield', function () {
    const yieldCpu = nativeSchedYield();
    assert.equal(typeof yieldCpu, 'function');
    yieldCpu!();
  });
});
