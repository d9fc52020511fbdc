// npm run docs: regenerate the config reference in README.md from the schema.
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { withReference } from '../agent/config/docs.js';
import { ConfigSchema } from '../agent/config-schema.js';

const readme = resolve(import.meta.dirname, '../../README.md');
writeFileSync(readme, withReference(readFileSync(readme, 'utf8'), ConfigSchema));
console.log(`updated ${readme}`);
