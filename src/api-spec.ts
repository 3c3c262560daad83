import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

/** openapi.yaml at the project root, found from src/ and from the compiled dist/src/ alike. */
export function apiSpecPath(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'openapi.yaml');
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error('openapi.yaml not found');
  }
}

/** A fresh copy each call: the validator annotates the document it is given. */
export function loadApiSpec(): Record<string, unknown> {
  return YAML.parse(fs.readFileSync(apiSpecPath(), 'utf8')) as Record<string, unknown>;
}
