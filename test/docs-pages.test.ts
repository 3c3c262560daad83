import fs from 'node:fs';
import path from 'node:path';
import { USAGE } from '../src/cli/parse-command';
import { USER_USAGE } from '../src/cli/user/parse-user-task';

/**
 * The README and the pages of docs/ stay true to the tree: every relative link and anchor
 * resolves, the architecture page names only files that exist, the configuration page lists
 * exactly the variables src/config.ts reads, and the CLI page shows every command the CLI's
 * usage lists. (The README's curl session itself runs in test/readme.test.ts.)
 */
const root = path.join(__dirname, '..');
const read = (page: string) => fs.readFileSync(path.join(root, page), 'utf8');
const PAGES = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The text outside fenced code blocks and code spans (where a `[x](y)` is not a link). */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`]*`/g, '``');
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*$/gm)) {
    const text = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** Every relative link target of a page (images too), as written. */
function linksOf(markdown: string): string[] {
  return [...prose(markdown).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]).filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

describe('the docs', () => {
  it('links only to files and headings that exist', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const page of PAGES) {
      for (const target of linksOf(read(page))) {
        checked++;
        const [file, anchor] = target.split('#', 2);
        const resolved = file === '' ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), decodeURI(file)));
        if (!fs.existsSync(path.join(root, resolved))) {
          broken.push(`${page}: ${target} (no ${resolved})`);
          continue;
        }
        if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(read(resolved)).has(anchor)) {
          broken.push(`${page}: ${target} (no heading #${anchor} in ${resolved})`);
        }
      }
    }
    expect(broken).toEqual([]);
    expect(checked).toBeGreaterThan(80);
  });

  it('links every page of docs/ from the README', () => {
    const linked = new Set(linksOf(read('README.md')).map((t) => t.split('#')[0]));
    expect(PAGES.filter((p) => p.startsWith('docs/') && !linked.has(p))).toEqual([]);
  });

  it('has a README that is a front door, not the manual', () => {
    expect(read('README.md').split('\n').length).toBeLessThanOrEqual(250);
  });

  it('names in the architecture page only source files and folders that exist', () => {
    const named = [...read('docs/architecture.md').matchAll(/\b(?:src|test|console|migrations|public|patches|scripts)\/[\w./-]*/g)]
      .map((m) => m[0].replace(/[.,]+$/, ''));
    expect(named.length).toBeGreaterThan(30);
    expect([...new Set(named)].filter((p) => !fs.existsSync(path.join(root, p)))).toEqual([]);
  });

  it('documents every variable src/config.ts reads in docs/configuration.md, and no other', () => {
    const source = read('src/config.ts');
    const schema = /const schema = z\s*\.object\(\{([\s\S]*?)^  \}\)/m.exec(source);
    expect(schema).not.toBeNull();
    const variables = [...schema![1].matchAll(/^ {4}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]).sort();
    expect(variables).toEqual(expect.arrayContaining(['PORT', 'DATABASE_URL', 'JWT_SECRET', 'VALIDATE_RESPONSES']));
    // The variables of the table's first column (`PORT`, `HOST` in one row).
    const rows = read('docs/configuration.md').split('\n').filter((line) => line.startsWith('| `'));
    const documented = rows.flatMap((row) => [...row.split('|')[1].matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1])).sort();
    expect(documented).toEqual(variables);
  });

  it('shows every command of the CLI in docs/cli.md', () => {
    const cli = read('docs/cli.md');
    const admin = USAGE.split('Admin commands:\n')[1].split('\n\n')[0];
    const commands = [...admin.matchAll(/^ {2}([a-z][a-z-]*(?: [a-z][a-z-]*)?)(?= |$)/gm)].map((m) => `accounts admin ${m[1]}`);
    const tasks = USER_USAGE.split('Tasks:\n')[1].split('\n\n')[0];
    const userTasks = [...tasks.matchAll(/^ {2}([a-z_]+(?: [a-z_]+)?)(?=\s)/gm)].map((m) => `accounts user ${m[1]}`);
    expect(commands.length).toBeGreaterThan(10);
    expect(userTasks.length).toBeGreaterThan(8);
    expect([...commands, ...userTasks].filter((c) => !cli.includes(c))).toEqual([]);
  });
});
