import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withReference } from '../agent/config/docs.js';
import { ConfigSchema } from '../agent/config-schema.js';

describe('README', () => {
  const readme = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8');

  it('holds the config reference generated from the schema (run `npm run docs` after changing it)', () => {
    expect(readme).toBe(withReference(readme, ConfigSchema));
    expect(readme).toContain('| `broker.mqtt.port` | integer 0..65535 | `1883` | `EDGE_AGENT_BROKER__MQTT__PORT` |');
  });

  it('shows the two set-up commands and the test command', () => {
    expect(readme).toContain('npm install');
    expect(readme).toContain('npm start');
    expect(readme).toContain('npm test');
  });
});
