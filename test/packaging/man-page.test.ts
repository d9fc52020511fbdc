// edge-agent(1) from the CLI's own help: every command and subcommand, as roff man reads.
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { manPage } from '../../scripts/binary/man-page.js';
import { packager } from '../../scripts/binary/deb.js';
import { CLI } from '../helpers/agent.js';

const help = (args: string[]) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('the man page', () => {
  const page = manPage('9.9.9', help);

  it('has the header and a section for every command, a subsection for every subcommand', () => {
    expect(page).toMatch(/^\.TH EDGE-AGENT 1 "" "edge-agent 9\.9\.9" "User Commands"$/m);
    for (const c of ['RUN', 'CONFIG', 'USER', 'APIKEY', 'EXPORT', 'HEALTH', 'SESSION', 'SYNC']) expect(page).toContain(`.SH COMMAND: ${c}`);
    for (const s of ['config check', 'config print', 'user add', 'session end', 'sync status']) expect(page).toContain(`.SS ${s}`);
    expect(page).toContain('--config <file>');
  });

  it('renders with man without a warning', () => {
    const r = spawnSync('man', ['--warnings', '-l', '-Tutf8', '-'], {
      input: page,
      encoding: 'utf8',
      env: { ...process.env, MANWIDTH: '80' },
    });
    expect(r.stderr).toBe('');
    const text = r.stdout.replace(/.\x08/g, '').replace(/ +/g, ' '); // no bold overstrikes, no justification
    expect(text).toMatch(/edge-agent - edge telemetry agent/);
    expect(text).toMatch(/COMMAND: SESSION/);
    expect(text).toContain('-c, --config <file>');
  });

  it('takes Maintainer and Homepage from the build environment (DEBFULLNAME, DEBEMAIL, EDGE_AGENT_HOMEPAGE)', () => {
    expect(packager({ DEBFULLNAME: 'Ada Farm', DEBEMAIL: 'ada@farm.example', EDGE_AGENT_HOMEPAGE: 'https://farm.example/agent' })).toEqual({
      maintainer: 'Ada Farm <ada@farm.example>',
      homepage: 'https://farm.example/agent',
    });
    expect(packager({}).maintainer).toMatch(/^edge-agent developers </);
  });
});
