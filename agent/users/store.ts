// Broker users: a JSON file of scrypt password hashes and roles, written atomically with mode 0600.
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { join } from 'node:path';
import { JsonFile } from './json-file.js';

interface UserRecord {
  /** PHC-style: $scrypt$ln=14,r=8,p=1$<salt base64>$<hash base64> */
  hash: string;
  roles: string[];
}

interface UsersFile {
  version: 1;
  users: Record<string, UserRecord>;
}

export function usersFilePath(config: { agent: { dataDir: string }; broker: { usersFile?: string } }): string {
  return config.broker.usersFile ?? join(config.agent.dataDir, 'users.json');
}

const SCRYPT = { ln: 14, r: 8, p: 1, keylen: 32 };
export const USERNAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

function scrypt(password: Buffer | string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT.keylen, { N: 2 ** SCRYPT.ln, r: SCRYPT.r, p: SCRYPT.p });
  return `$scrypt$ln=${SCRYPT.ln},r=${SCRYPT.r},p=${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(hash: string, password: Buffer | string): Promise<boolean> {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([^$]+)\$([^$]+)$/.exec(hash);
  if (!m) return false;
  const [, ln, r, p, salt, expected] = m;
  const want = Buffer.from(expected, 'base64');
  const N = 2 ** Number(ln);
  const got = await scrypt(password, Buffer.from(salt, 'base64'), want.length, {
    N,
    r: Number(r),
    p: Number(p),
    maxmem: 256 * N * Number(r),
  });
  return got.length === want.length && timingSafeEqual(got, want);
}

let dummy: Promise<string> | undefined;
const dummyHash = () => (dummy ??= hashPassword(randomBytes(16).toString('hex')));

export class UserStore {
  // Re-read when the file changed, so `edge-agent user add` takes effect without a restart.
  private readonly file: JsonFile<UsersFile>;

  constructor(readonly path: string) {
    this.file = new JsonFile(path, () => ({ version: 1, users: {} }));
  }

  /** Users by name in an object without a prototype: a user named `__proto__` or `constructor` is just a user. */
  private load(): UsersFile {
    const data = this.file.read();
    return { ...data, users: Object.assign(Object.create(null) as Record<string, UserRecord>, data.users) };
  }

  private save(data: UsersFile): void {
    this.file.write(data);
  }

  /** Changes whenever the users file does (a password or role changed). */
  revision(): number {
    return this.file.revision();
  }

  /** Changes when the user's password does: login sessions made before a change end with it. */
  fingerprint(username: string): string | undefined {
    const user = this.load().users[username];
    return user && createHash('sha256').update(user.hash).digest('base64url').slice(0, 16);
  }

  isEmpty(): boolean {
    return Object.keys(this.load().users).length === 0;
  }

  list(): { username: string; roles: string[] }[] {
    return Object.entries(this.load().users).map(([username, u]) => ({ username, roles: u.roles }));
  }

  async add(username: string, password: string, roles: string[]): Promise<void> {
    if (!USERNAME_PATTERN.test(username)) throw new Error(`invalid user name ${JSON.stringify(username)}: use 1-64 of A-Z a-z 0-9 . _ @ -`);
    if (password.length === 0) throw new Error('empty password');
    const data = this.load();
    const before = data.users[username];
    // The same password again keeps its hash: only a new password ends the user's sessions and connections.
    const hash = before && (await verifyPassword(before.hash, password)) ? before.hash : await hashPassword(password);
    data.users[username] = { hash, roles };
    this.save(data);
  }

  /** A user's roles, keeping the password; false if there is no such user. */
  setRoles(username: string, roles: string[]): boolean {
    const data = this.load();
    const user = data.users[username];
    if (!user) return false;
    user.roles = roles;
    this.save(data);
    return true;
  }

  remove(username: string): boolean {
    const data = this.load();
    if (!data.users[username]) return false;
    delete data.users[username];
    this.save(data);
    return true;
  }

  async verify(username: string, password: Buffer): Promise<string[] | null> {
    const user = this.load().users[username];
    // An unknown name costs the same scrypt work, so timing does not tell which names exist.
    const ok = await verifyPassword(user?.hash ?? (await dummyHash()), password);
    return user && ok ? user.roles : null;
  }

  async roles(username: string): Promise<string[] | null> {
    return this.load().users[username]?.roles ?? null;
  }
}
