import { SimNode } from './sim.js';
async function main() {
  const sim = new SimNode({ seed: Number(process.argv[2]), steps: 300, traceLines: 1_000_000, mutation: 'singleVoterReadIndexShortcut' });
  await sim.run();
  const lines = (sim as unknown as { trace: { lines(): string[] } }).trace.lines();
  const at = lines.findIndex((l) => l.includes(process.argv[3]!));
  console.log(lines.slice(Math.max(0, at - 25), at + 30).filter((l) => !l.includes('step ')).join('\n'));
}
void main();
