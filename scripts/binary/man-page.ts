// edge-agent(1), made from the CLI's own help at build time (so it never drifts from it): the
// top-level help, then each command's and subcommand's, as preformatted roff sections.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';

type Help = (args: string[]) => string;

/** Command names listed under "Commands:" in a help text (not `help` itself). */
function commandsIn(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^ {2}(\w[\w-]*)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
}

/** roff that shows `text` as written: no fill, backslashes and leading dots escaped. */
function verbatim(text: string): string {
  const lines = text
    .trimEnd()
    .split('\n')
    .map((l) => l.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1'));
  return ['.nf', ...lines, '.fi'].join('\n');
}

export function manPage(version: string, help: Help): string {
  const top = help(['--help']);
  const sections = [
    `.TH EDGE-AGENT 1 "" "edge-agent ${version}" "User Commands"`,
    '.SH NAME',
    'edge-agent \\- edge telemetry agent: embedded MQTT broker, validated durable ingest, store-and-forward sync',
    '.SH SYNOPSIS',
    verbatim(top),
  ];
  for (const command of commandsIn(top)) {
    const text = help([command, '--help']);
    sections.push(`.SH COMMAND: ${command.toUpperCase()}`, verbatim(text));
    for (const sub of commandsIn(text)) sections.push(`.SS ${command} ${sub}`, verbatim(help([command, sub, '--help'])));
  }
  sections.push(
    '.SH FILES',
    '.nf\n/etc/edge-agent/config.yaml\n/var/lib/edge-agent\n/usr/share/doc/edge-agent/README.md\n.fi',
    '.SH SEE ALSO',
    'journalctl(1), systemctl(1)',
  );
  return `${sections.join('\n')}\n`;
}

/** Help texts read, by binary, its build and the arguments: the packaging tests make two packages of one build. */
const helps = new Map<string, string>();

/** The help of the agent binary at `binary`. */
export const helpOf =
  (binary: string): Help =>
  (args) => {
    const key = [binary, statSync(binary).mtimeMs, ...args].join('\0');
    const text = helps.get(key) ?? execFileSync(binary, args, { encoding: 'utf8', env: { ...process.env, COLUMNS: '80' } });
    helps.set(key, text);
    return text;
  };
