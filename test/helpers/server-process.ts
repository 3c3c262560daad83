import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const root = path.join(__dirname, '..', '..');

export interface StartedServer {
  child: ChildProcess;
  port: number;
  /** Everything it has written so far, stdout and stderr. */
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * The real entry point, `src/server.ts`, as a process (through tsx, as `npm start` runs the
 * build), with only `env` (plus PATH and HOME); resolves once it logs that it is listening.
 */
export function startServer(env: NodeJS.ProcessEnv): Promise<StartedServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => l.includes('"msg":"listening"'));
      if (line) resolve({ child, port: JSON.parse(line).port, output: () => output, exited });
    });
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${output}`)));
    // Generous: a first start on the embedded default runs initdb (a child process) and the
    // migrations, which take half a minute when the shared machine is busy.
    setTimeout(() => reject(new Error(`server did not start: ${output}`)), 90_000).unref();
  });
}
