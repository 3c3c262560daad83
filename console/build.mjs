// Builds the web console (console/*.tsx, style.css) into dist/console: assets/<name>-<hash>.js and
// .css (named by content, so a browser may keep them for a year) and index.html, the page every
// console path answers with. Run by `npm run build` (so by `npm ci` and `npm start`).
//
// Rebuilding what has not changed rewrites no file, and a file is only ever replaced whole (written
// beside, then renamed): a server running while the console is rebuilt keeps answering.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// `node console/build.mjs <dir>` builds elsewhere (served with CONSOLE_DIR=<dir>).
const out = path.resolve(process.argv[2] ?? path.join(root, 'dist', 'console'));
const assets = path.join(out, 'assets');

const result = await build({
  entryPoints: { console: path.join(root, 'console', 'main.tsx') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome111', 'firefox115', 'safari16.4'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  outdir: assets,
  write: false,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

fs.mkdirSync(assets, { recursive: true });

/** Writes `file` unless it already holds exactly `contents`; never leaves a half-written file. */
function put(file, contents) {
  if (fs.existsSync(file) && Buffer.compare(fs.readFileSync(file), Buffer.from(contents)) === 0) return;
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, contents);
  fs.renameSync(tmp, file);
}

const names = new Set();
let script;
let style;
for (const f of result.outputFiles) {
  const name = path.basename(f.path);
  names.add(name);
  put(f.path, f.contents);
  if (name.endsWith('.js')) script = name;
  if (name.endsWith('.css')) style = name;
}
if (!script || !style) throw new Error('the console build made no script or no style sheet');

const template = fs.readFileSync(path.join(root, 'console', 'index.html'), 'utf8');
put(path.join(out, 'index.html'), template.replaceAll('{{script}}', `/assets/${script}`).replaceAll('{{style}}', `/assets/${style}`));

// Assets of earlier builds go once the page no longer names them.
for (const name of fs.readdirSync(assets)) {
  if (!names.has(name) && !name.endsWith('.tmp')) fs.rmSync(path.join(assets, name), { force: true });
}
