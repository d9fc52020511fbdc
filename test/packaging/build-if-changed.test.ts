// `npm start` builds only when a source changed since the last build; `npm run check` (and so
// `npm test`) checks again only when a file changed since the checks last passed.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from '../helpers/agent.js';

const script = resolve(import.meta.dirname, '../../scripts/build-if-changed.mjs');
const checkScript = resolve(import.meta.dirname, '../../scripts/check-if-changed.mjs');

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

describe('check when changed', () => {
  const root = tempDir();
  afterAll(() => cleanup(root));
  // A git project whose four checks log their runs; the type check fails while `broken` exists.
  const log = (step: string) => `echo ${step} >> checks.txt`;
  const scripts = {
    'build:if-changed': log('build'),
    typecheck: `${log('typecheck')} && test ! -e broken`,
    lint: log('lint'),
    'format:check': log('format'),
  };
  writeFileSync(join(root, 'package.json'), JSON.stringify({ scripts }));
  writeFileSync(join(root, '.gitignore'), 'checks.txt\nnode_modules/\ndata/\n');
  mkdirSync(join(root, 'agent'));
  writeFileSync(join(root, 'agent/cli.ts'), 'export {};\n');
  execFileSync('git', ['init', '-q'], { cwd: root });
  execFileSync('git', ['add', '.'], { cwd: root });
  const check = (...args: string[]) =>
    spawnSync(process.execPath, [checkScript, ...args], {
      cwd: root,
      env: { ...process.env, EDGE_AGENT_BUILD_ROOT: root },
      encoding: 'utf8',
    });
  const runs = () => (existsSync(join(root, 'checks.txt')) ? readFileSync(join(root, 'checks.txt'), 'utf8').trim().split('\n') : []);

  it('runs every check the first time, not again on the same files, and again once a file changed or with --force', () => {
    expect(check().status).toBe(0);
    expect(runs()).toEqual(['build', 'typecheck', 'lint', 'format']);
    const skipped = check();
    expect(skipped.status).toBe(0);
    expect(skipped.stderr).toContain('not run again');
    expect(runs()).toHaveLength(4);
    mkdirSync(join(root, 'data'));
    writeFileSync(join(root, 'data/ignored.txt'), 'git ignores this\n');
    expect(check().status).toBe(0);
    expect(runs()).toHaveLength(4);
    writeFileSync(join(root, 'agent/cli.ts'), 'export const changed = 1;\n'); // a tracked file's content
    expect(check().status).toBe(0);
    expect(runs()).toHaveLength(8);
    writeFileSync(join(root, 'agent/new.ts'), 'export {};\n'); // an untracked file
    expect(check().status).toBe(0);
    expect(runs()).toHaveLength(12);
    expect(check('--force').status).toBe(0);
    expect(runs()).toHaveLength(16);
  });

  it('is not stamped when a check fails: it runs again until the checks pass', () => {
    writeFileSync(join(root, 'broken'), '');
    const failed = check();
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).not.toMatch(/at .*check-if-changed/); // the step's own output, no stack trace
    const before = runs().length;
    expect(check().status).not.toBe(0);
    expect(runs().length).toBe(before + 2); // build, then the type check that fails again
    rmSync(join(root, 'broken'));
    expect(check().status).toBe(0);
    expect(check().stderr).toContain('not run again');
  });
});
