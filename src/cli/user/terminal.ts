import { UsageError } from '../parse-command';
import { Interrupted } from './cli-failure';

/** The streams of a run, as `process` has them; `isTTY` and `setRawMode` only on a terminal. */
export interface TerminalIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface Question {
  /** The prompt shown on a terminal, e.g. `Email: `. */
  prompt: string;
  /** What the answer is, for the error when standard input has none: `the email`. */
  what: string;
  hidden?: boolean;
  /** Ask a second time and require the same answer (passwords being set). */
  confirm?: boolean;
  /** Checks an answer: a reason to refuse it, or undefined. */
  check?: (answer: string) => string | undefined;
  /** An empty answer is an answer (the local password: empty means unencrypted). */
  allowEmpty?: boolean;
}

const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const SPINNER_DELAY_MS = 500;

/**
 * Prompts and answers. On a terminal (standard input a TTY) it asks on stderr, hiding what is
 * typed for a password; otherwise each answer is the next line of standard input, and a missing
 * one is bad usage (exit status 2): it never waits on a prompt nobody sees.
 */
export class Terminal {
  private lines: LineReader | undefined;

  constructor(private readonly io: TerminalIo) {}

  get interactive(): boolean {
    return this.io.stdin.isTTY === true && typeof this.io.stdin.setRawMode === 'function';
  }

  async ask(q: Question): Promise<string> {
    if (!this.interactive) {
      this.lines ??= new LineReader(this.io.stdin);
      const answer = await this.lines.next();
      if (answer === undefined || (answer === '' && !q.allowEmpty)) throw new UsageError(`no ${q.what} on standard input (one line per answer)`);
      const wrong = q.check?.(answer);
      if (wrong) throw new UsageError(wrong);
      return answer;
    }
    for (let attempt = 1; ; attempt++) {
      const answer = await this.readLine(q.prompt, q.hidden === true);
      const wrong = answer === '' && !q.allowEmpty ? `the ${q.what} cannot be empty` : q.check?.(answer);
      if (!wrong && q.confirm) {
        const again = await this.readLine(q.prompt.replace(/:\s*$/, ' (again): '), q.hidden === true);
        if (again === answer) return answer;
        if (attempt >= 3) throw new UsageError(`the two ${q.what}s differ`);
        this.io.stderr.write(`The two ${q.what}s differ; once more.\n`);
        continue;
      }
      if (!wrong) return answer;
      if (attempt >= 3) throw new UsageError(wrong);
      this.io.stderr.write(`${capitalize(wrong)}; once more.\n`);
    }
  }

  /** One line typed on the terminal, echoed or not, read in raw mode (so Ctrl-C is ours: exit 130). */
  private readLine(prompt: string, hidden: boolean): Promise<string> {
    const { stdin, stderr } = this.io;
    // Raw mode before the prompt: what is typed once the prompt shows is never echoed by the terminal.
    stdin.setRawMode!(true);
    stdin.setEncoding('utf8');
    stdin.resume();
    stderr.write(prompt);
    return new Promise((resolve, reject) => {
      let value = '';
      const done = (end: () => void) => {
        stdin.removeListener('data', onData);
        stdin.setRawMode!(false);
        stdin.pause();
        stderr.write('\n');
        end();
      };
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') return done(() => resolve(value));
          if (ch === '\u0003') return done(() => reject(new Interrupted('interrupted')));
          if (ch === '\u0004' && value === '') return done(() => resolve(''));
          if (ch === '\u007f' || ch === '\b') {
            if (value !== '') {
              value = [...value].slice(0, -1).join('');
              if (!hidden) stderr.write('\b \b');
            }
            continue;
          }
          if (ch === '\u0015') {
            // Ctrl-U: start the line again.
            if (!hidden) stderr.write('\b \b'.repeat([...value].length));
            value = '';
            continue;
          }
          if (ch < ' ') continue;
          value += ch;
          if (!hidden) stderr.write(ch);
        }
      };
      stdin.on('data', onData);
    });
  }

  /**
   * Waits for `work`; if that takes more than half a second and stderr is a terminal, a spinner
   * with `label` turns on stderr until it is done (then its line is cleared).
   */
  async spin<T>(label: string, work: Promise<T>): Promise<T> {
    const { stderr } = this.io;
    if (stderr.isTTY !== true) return work;
    let frame = 0;
    let timer: NodeJS.Timeout | undefined;
    const draw = () => stderr.write(`\r${SPINNER_FRAMES[frame++ % SPINNER_FRAMES.length]} ${label}`);
    const start = setTimeout(() => {
      draw();
      timer = setInterval(draw, 80);
    }, SPINNER_DELAY_MS);
    try {
      return await work;
    } finally {
      clearTimeout(start);
      if (timer) {
        clearInterval(timer);
        stderr.write('\r\u001b[2K');
      }
    }
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Lines of a stream, read from the first time one is asked for (a pipe nobody writes to is never waited on unless an answer is needed). */
class LineReader {
  private buffer = '';
  private readonly lines: string[] = [];
  private ended = false;
  private started = false;
  private wake: (() => void) | undefined;

  constructor(private readonly stream: NodeJS.ReadableStream) {}

  async next(): Promise<string | undefined> {
    if (!this.started) this.start();
    while (this.lines.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
    return this.lines.shift();
  }

  private start(): void {
    this.started = true;
    this.stream.setEncoding('utf8');
    this.stream.on('data', (chunk: string) => {
      this.buffer += chunk;
      const parts = this.buffer.split('\n');
      this.buffer = parts.pop() ?? '';
      this.lines.push(...parts.map((l) => l.replace(/\r$/, '')));
      this.notify();
    });
    this.stream.on('end', () => {
      if (this.buffer !== '') this.lines.push(this.buffer.replace(/\r$/, ''));
      this.buffer = '';
      this.ended = true;
      this.notify();
    });
    this.stream.on('error', () => {
      this.ended = true;
      this.notify();
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
