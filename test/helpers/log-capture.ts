import { Writable } from 'node:stream';
import { createLogger } from '../../src/logger';

/** A real logger (debug level) whose JSON lines are kept, parsed, in `lines`. */
export function logCapture<Line extends { msg: string; level: number } = { msg: string; level: number }>() {
  const lines: Line[] = [];
  const log = createLogger(
    'debug',
    new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  return { log, lines };
}
