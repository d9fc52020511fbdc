// The data directory, private to the agent's user, and the schemas it keeps there.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config-schema.js';
import { ConfigError } from '../config/load.js';
import { SchemaRegistry } from '../ingest/schemas.js';
import type { Logger } from '../lib/logger.js';
import { makePrivate, privateUmask } from '../lib/private-files.js';
import { usersFilePath } from '../users/store.js';

/** Makes the data directory (and what an older version left readable) private to this user. */
export function prepareDataDir(config: Config, logger: Logger): void {
  privateUmask();
  mkdirSync(config.agent.dataDir, { recursive: true, mode: 0o700 });
  const files = [config.agent.dataDir, usersFilePath(config), ...(config.store.path ? [config.store.path] : [])];
  const madePrivate = files.reduce((n, p) => n + makePrivate(p), 0);
  if (madePrivate) logger.warn({ files: madePrivate }, 'data files were readable by other users; made private (0600, folders 0700)');
}

/** The topics' schemas, from the config and the schema folder; a broken one stops start-up. */
export function loadSchemas(config: Config): SchemaRegistry {
  const i = config.ingest;
  // Schemas changed through the API are written here, so a restart keeps them.
  const dir = i.schemaDir ?? join(config.agent.dataDir, 'schemas');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const schemas = new SchemaRegistry({ dir, inline: i.schemas, mode: i.mode });
  const problems = schemas.load();
  if (problems.length) throw new ConfigError(problems, 'reading schemas');
  return schemas;
}
