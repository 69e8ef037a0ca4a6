// Writing the analyses' SVG figures to a folder, and PNG copies rendered by a headless Chromium when asked for.
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The browser that renders PNGs: $CHROME, else Debian's chromium (tools/setup-system.sh installs it). */
function browser(): string {
  const candidates = [process.env.CHROME, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  const found = candidates.find((c): c is string => !!c && existsSync(c));
  if (!found) throw new Error('--png needs a Chromium: set CHROME to its path (or run tools/setup-system.sh)');
  return found;
}

/** Writes `name`.svg (and `name`.png with png) into dir; returns the paths written. */
export async function writeFigure(dir: string, name: string, svg: string, png: boolean): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const svgPath = resolve(join(dir, `${name}.svg`));
  await writeFile(svgPath, svg);
  if (!png) return [svgPath];
  const size = /width="(\d+(?:\.\d+)?)" height="(\d+(?:\.\d+)?)"/.exec(svg);
  if (!size) throw new Error(`${name}.svg: no width/height to render at`);
  const pngPath = svgPath.replace(/\.svg$/, '.png');
  await run(browser(), [
    '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--disable-background-networking', '--no-first-run',
    `--window-size=${Math.ceil(Number(size[1]))},${Math.ceil(Number(size[2]))}`, `--screenshot=${pngPath}`, `file://${svgPath}`,
  ], { timeout: 60_000 });
  return [svgPath, pngPath];
}
