// npm run bench -- idle: the agent's CPU at rest with the machine's health sampled (every 10 s, the
// default, and every second) next to the same agent with sampling off, side by side in the same
// run; and its RSS.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchAgent } from './agent.js';
import { printTable, note } from './report.js';
import { cpuMs, statusMb } from './processes.js';

const IDLE_MS = 60_000;

export async function benchIdle(): Promise<void> {
  const variants = [
    { name: 'off', system: { enabled: false } },
    { name: 'every 10 s', system: { enabled: true, intervalSec: 10 } },
    { name: 'every 1 s', system: { enabled: true, intervalSec: 1 } },
  ];
  const dirs = variants.map(() => mkdtempSync(join(tmpdir(), 'bench-idle-')));
  const agents = await Promise.all(variants.map((v, i) => startBenchAgent(dirs[i], { health: { system: v.system } })));
  try {
    await new Promise((r) => setTimeout(r, 5000)); // start-up work done
    const before = agents.map((a) => cpuMs(a.proc.pid!));
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const used = agents.map((a, i) => ((cpuMs(a.proc.pid!) - before[i]) / IDLE_MS) * 100);
    printTable(
      `idle: CPU of the agent at rest over ${IDLE_MS / 1000} s (% of one core), health sampling on against off, all three running side by side`,
      [
        {
          name: 'CPU %, sampling every 10 s',
          baselineName: 'sampling off',
          baseline: used[0],
          value: used[1],
          target: 0.5,
          higherIsBetter: false,
        },
        {
          name: 'CPU %, sampling every 1 s',
          baselineName: 'sampling off',
          baseline: used[0],
          value: used[2],
          target: 0.2,
          higherIsBetter: false,
        },
      ],
    );
    note(`RSS: ${variants.map((v, i) => `${v.name} ${statusMb(agents[i].proc.pid!, 'VmRSS').toFixed(0)} MB`).join(', ')}`);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  }
}
