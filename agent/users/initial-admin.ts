// First start with no users: an `admin` with a random password, written to a private file whose
// path (never the password) is logged.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Logger } from '../lib/logger.js';
import type { UserStore } from './store.js';

async function createAdmin(users: UserStore, passwordFile: string, logger: Logger): Promise<void> {
  if (!users.isEmpty()) return;
  const password = randomBytes(18).toString('base64url');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  await users.add('admin', password, ['admin']);
  logger.warn(
    { user: 'admin', passwordFile },
    'no users yet: created user admin; its password is in this file (read it, then change it with `edge-agent user add admin` and delete the file)',
  );
}

/**
 * Make the first admin if there are no users. A full disk must not stop the agent from starting:
 * then it tries again every 10 s until it can. Returns the way to stop trying.
 */
export async function ensureAdmin(users: UserStore, passwordFile: string, logger: Logger): Promise<() => void> {
  try {
    await createAdmin(users, passwordFile, logger);
    return () => {};
  } catch (err) {
    logger.error({ err: (err as Error).message, passwordFile }, 'cannot create the first admin user yet; trying again every 10 s');
    const timer = setInterval(() => {
      createAdmin(users, passwordFile, logger).then(
        () => clearInterval(timer),
        () => {},
      );
    }, 10_000);
    timer.unref();
    return () => clearInterval(timer);
  }
}
