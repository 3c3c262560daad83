import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

/**
 * `npm start` alone, as the README says, prints JSON lines only: no banner of npm's (the
 * checkout's .npmrc keeps npm quiet), no output of the build it runs first; and serves the web
 * console as well as the API.
 */
const root = path.resolve(__dirname, '../..');

it('prints only JSON lines up to and including "listening", and serves the web console at /', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-start-'));
  // Nothing of an enclosing `npm test` (its npm_config_loglevel would hide the banner for us).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'DATABASE_URL' && k !== 'NODE_OPTIONS'));
  const child = spawn('npm', ['start'], {
    cwd: root,
    env: { ...env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const lines: string[] = [];
  let page: { status: number; type: string | null; script?: number } | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening" line in 90 s; got:\n${lines.join('\n')}`)), 90_000);
      child.on('exit', (code) => reject(new Error(`npm start exited with ${code}; got:\n${lines.join('\n')}`)));
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(line);
        if (line.includes('"listening"')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const url = JSON.parse(lines.find((l) => l.includes('"listening"'))!).url as string;
    const res = await fetch(`${url}/`);
    const html = await res.text();
    const script = /<script type="module" src="(\/assets\/[^"]+)"/.exec(html)?.[1];
    page = { status: res.status, type: res.headers.get('content-type'), script: script ? (await fetch(`${url}${script}`)).status : undefined };
  } finally {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
    await new Promise((resolve) => (child.exitCode === null ? child.on('exit', resolve) : resolve(undefined)));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  expect(lines.map((l) => JSON.parse(l).msg)).toContain('listening');
  expect(page).toEqual({ status: 200, type: 'text/html; charset=utf-8', script: 200 });
}, 120_000);
