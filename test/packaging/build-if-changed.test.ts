// `npm start` builds only when a source changed since the last build.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from '../helpers/agent.js';

const script = resolve(import.meta.dirname, '../../scripts/build-if-changed.mjs');

describe('build when changed', () => {
  const root = tempDir();
  afterAll(() => cleanup(root));
  // A project whose build counts its runs and stamps itself, as the real one does.
  mkdirSync(join(root, 'agent'));
  mkdirSync(join(root, 'dist'));
  writeFileSync(join(root, 'agent/cli.ts'), 'export {};\n');
  writeFileSync(join(root, 'package.json'), JSON.stringify({ scripts: { build: `echo run >> builds.txt && node ${script} --built` } }));
  const start = () =>
    execFileSync(process.execPath, [script], {
      cwd: root,
      env: { ...process.env, EDGE_AGENT_BUILD_ROOT: root },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const builds = () => readFileSync(join(root, 'builds.txt'), 'utf8').trim().split('\n').length;

  it('builds the first time, not again while nothing changed, and again once a source did', () => {
    start();
    expect(builds()).toBe(1);
    start();
    start();
    expect(builds()).toBe(1);
    const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000);
    const stamp = join(root, 'dist/.built');
    utimesSync(stamp, ago(60), ago(60)); // built an hour ago...
    utimesSync(join(root, 'agent/cli.ts'), ago(30), ago(30)); // ...and a source changed since
    start();
    expect(builds()).toBe(2);
    utimesSync(stamp, ago(60), ago(60));
    for (const f of ['agent/cli.ts', 'package.json']) utimesSync(join(root, f), ago(120), ago(120));
    writeFileSync(join(root, 'agent/cli.test.ts'), 'export {};\n'); // tests do not go into dist
    utimesSync(join(root, 'agent/cli.test.ts'), ago(30), ago(30));
    utimesSync(join(root, 'agent'), ago(120), ago(120)); // (adding a file touched its folder)
    start();
    expect(builds()).toBe(2);
  });
});
