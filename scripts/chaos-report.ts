// npm run chaos (after the scenarios): docs/reliability.md from what each scenario recorded in
// test-results/chaos/: what it did, what it found, its seed and how long it ran.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from './project-root.js';

interface Outcome {
  scenario: string;
  title: string;
  seed: number;
  full: boolean;
  seconds: number;
  at: string;
  did: Record<string, number | string>;
  found: Record<string, number | string>;
  notes?: string;
}

const ROOT = projectRoot();
const dir = join(ROOT, 'test-results/chaos');
const outcomes: Outcome[] = existsSync(dir)
  ? readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Outcome)
  : [];
const table = (o: Record<string, number | string>) => [
  '| | |',
  '| --- | --- |',
  ...Object.entries(o).map(([k, v]) => `| ${k} | ${typeof v === 'number' ? v.toLocaleString('en-US') : v} |`),
];
const lines = [
  '# Reliability',
  '',
  'What the chaos suite (`npm run chaos`, `test/chaos/`) did to the agent and what it found. Each',
  'scenario prints its seed; `CHAOS_SEED=<seed> npm run chaos` replays it. `npm test` runs a short',
  'version of each (fewer kills, lives, packets and outages, a 30-second soak). A scenario is recorded',
  'only once every check in it passed.',
  '',
  outcomes.every((o) => o.full)
    ? 'Every scenario below is from the full run (`npm run chaos`).'
    : `**Short runs**: ${outcomes
        .filter((o) => !o.full)
        .map((o) => o.scenario)
        .join(', ')} below are from the short version (\`npm test\`'s sizes), not yet from \`npm run chaos\`.`,
  '',
];
for (const o of outcomes.sort((a, b) => a.scenario.localeCompare(b.scenario))) {
  lines.push(
    `## ${o.scenario}`,
    '',
    `${o.title[0].toUpperCase()}${o.title.slice(1)}.`,
    '',
    `${o.full ? 'Full' : 'Short'} run on ${o.at.slice(0, 10)}, ${o.seconds} s, seed ${o.seed} (\`CHAOS_SEED=${o.seed} ${o.full ? 'npm run chaos' : `npx vitest run test/chaos/${o.scenario}.test.ts`}\`).`,
    '',
    'Done:',
    '',
    ...table(o.did),
    '',
    'Found:',
    '',
    ...table(o.found),
    '',
    ...(o.notes ? [o.notes, ''] : []),
  );
}
lines.push(
  '## Faults the rest of the suite covers',
  '',
  'Each with its own positive control:',
  '',
  '- disk full (a filesystem of a few MB) while readings arrive: `test/faults/disk-full.test.ts`; each',
  '  step of disk-pressure relief, the reserve, and free space read after every few MB written: `test/faults/disk-pressure.test.ts`',
  '- SIGKILL mid-commit with a PostgreSQL sink (ordered, once): `test/sync/crash.test.ts`; the log itself: `test/ingest/crash.test.ts`',
  '- a sink added to an agent with data, and removed: `test/sync/add-sink.test.ts`',
  '- the clock held, corrected and synchronised, retention paused while it cannot be trusted: `test/health/clock.test.ts`',
  '- poison payloads, deep and huge JSON: `test/faults/poison.test.ts`; a viewer and a guesser at once: `test/faults/abuse.test.ts`',
  '- random requests against every route of the OpenAPI document: `test/web/fuzz.test.ts`',
  '- the sink contract (refused credentials, an outage, a poison reading, a resend) for every sink: `test/sync/sink-contract.test.ts`',
  '',
);
writeFileSync(join(ROOT, 'docs/reliability.md'), `${lines.join('\n')}\n`);
console.log(`written: docs/reliability.md (${outcomes.length} scenarios)`);
