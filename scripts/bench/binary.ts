// npm run bench -- binary: the single executable (Node 22 inside) against the same agent run from
// the built sources as `npm start` runs it (the machine's Node): time from start to `ready`, and
// resident memory at rest, each the median of 3 starts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBinary } from '../binary/build.js';
import { startBenchAgent } from './agent.js';
import { statusMb } from './processes.js';
import { median, printLimits, printTable } from './report.js';

const RUNS = 3;

async function measure(program: 'agent' | { binary: string }) {
  const ready: number[] = [];
  const rss: number[] = [];
  const anon: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-binary-'));
    const started = performance.now();
    const agent = await startBenchAgent(dir, {}, program);
    ready.push(performance.now() - started);
    await new Promise((r) => setTimeout(r, 10_000));
    rss.push(statusMb(agent.proc.pid!, 'VmRSS'));
    anon.push(statusMb(agent.proc.pid!, 'RssAnon'));
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return { ready: median(ready), rss: median(rss), anon: median(anon) };
}

export async function benchBinary(): Promise<void> {
  const binary = await buildBinary(process.arch as 'x64' | 'arm64'); // this tree's, not one left from an older build
  const sources = await measure('agent');
  const single = await measure({ binary });
  printTable(
    `binary: the single executable (Node 22) against the agent from its built sources (Node ${process.version}); median of ${RUNS} starts`,
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
