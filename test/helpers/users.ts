import { execFile } from 'node:child_process';
import { CLI } from './agent.js';

/** Add a user through the real CLI, password on stdin. */
export function addUser(configPath: string, name: string, password: string, roles: string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const roleArgs = roles.length ? ['--role', ...roles] : [];
    const child = execFile(process.execPath, [CLI, '--config', configPath, 'user', 'add', name, ...roleArgs], (err) =>
      err ? reject(err) : resolve(),
    );
    child.stdin!.end(`${password}\n`);
  });
}
