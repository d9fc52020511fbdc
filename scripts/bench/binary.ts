// npm run bench -- binary: the single executable (Node 22 inside) against the same agent run from
// the built sources as `npm start` runs it (the machine's Node): time from start to `ready`, and
// resident memory at rest, each the median of 5 starts, alternating, each after a warm-up start.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBinary } from '../binary/build.js';
import { startBenchAgent } from './agent.js';
import { statusMb } from './processes.js';
import { median, printLimits, printTable } from './report.js';

const RUNS = 5;

interface Starts {
  ready: number[];
  rss: number[];
  anon: number[];
}

/**
 * A start as after an earlier one: a first start, stopped at ready, brings the program's files into
 * the page cache. An agent at rest hands its file pages back to the kernel (agent.pageOutAfter), so
 * without it each start read them again from the disk, and the figure moved with the disk's cache.
 */
async function warmUp(program: 'agent' | { binary: string }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-binary-warm-'));
  await (await startBenchAgent(dir, {}, program)).stop();
  rmSync(dir, { recursive: true, force: true });
}

async function measureOnce(program: 'agent' | { binary: string }, into: Starts): Promise<void> {
  await warmUp(program);
  const dir = mkdtempSync(join(tmpdir(), 'bench-binary-'));
  const started = performance.now();
  const agent = await startBenchAgent(dir, {}, program);
  into.ready.push(performance.now() - started);
  await new Promise((r) => setTimeout(r, 10_000));
  into.rss.push(statusMb(agent.proc.pid!, 'VmRSS'));
  into.anon.push(statusMb(agent.proc.pid!, 'RssAnon'));
  await agent.stop();
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Starts alternate between the two (the machine's state drifts: three starts of one, then three of
 * the other, put the same program at 941 and at 1,153 ms in two runs minutes apart).
 */
async function measure(binary: string) {
  const sources: Starts = { ready: [], rss: [], anon: [] };
  const single: Starts = { ready: [], rss: [], anon: [] };
  for (let i = 0; i < RUNS; i++) {
    await measureOnce('agent', sources);
    await measureOnce({ binary }, single);
  }
  const medians = (s: Starts) => ({ ready: median(s.ready), rss: median(s.rss), anon: median(s.anon) });
  return { sources: medians(sources), single: medians(single) };
}

export async function benchBinary(): Promise<void> {
  const binary = await buildBinary(process.arch as 'x64' | 'arm64'); // this tree's, not one left from an older build
  const { sources, single } = await measure(binary);
  printTable(
    `binary: the single executable (Node 22) against the agent from its built sources (Node ${process.version}); median of ${RUNS} starts each, alternating`,
    [
      {
        name: 'start to ready, ms',
        baselineName: 'from sources',
        baseline: sources.ready,
        value: single.ready,
        target: 0.5,
        higherIsBetter: false,
      },
      {
        name: 'RSS at rest, MB',
        baselineName: 'from sources',
        baseline: sources.rss,
        value: single.rss,
        target: 0.5,
        higherIsBetter: false,
      },
      {
        name: 'anonymous RSS at rest, MB',
        baselineName: 'from sources',
        baseline: sources.anon,
        value: single.anon,
        target: 0.5,
        higherIsBetter: false,
      },
    ],
  );
  printLimits('binary: absolute targets', [{ name: 'single executable: start to ready', value: single.ready, unit: 'ms', max: 1000 }]);
}
