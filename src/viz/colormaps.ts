// Colour maps shared by the 3D grid (as a 256-entry lookup texture) and the 2D panels. Pure functions, no DOM.
//
// Each sequential map is given by nine anchors sampled at t = 0, 1/8, …, 1 from matplotlib's published tables
// (viridis, magma, inferno) and Google's Turbo; values in between are linearly interpolated in sRGB, which is
// close enough to the originals for a dashboard. coolwarm is Moreland's diverging map, also by anchors.

export const COLORMAP_NAMES = ['viridis', 'magma', 'inferno', 'turbo', 'coolwarm'] as const;
export type ColormapName = (typeof COLORMAP_NAMES)[number];

const ANCHORS: Record<ColormapName, string[]> = {
  viridis: ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'],
  magma: ['#000004', '#1c1044', '#4f127b', '#812581', '#b5367a', '#e55064', '#fb8761', '#fec287', '#fcfdbf'],
  inferno: ['#000004', '#1f0c48', '#550f6d', '#88226a', '#ba3655', '#e35933', '#f98e09', '#f9cb35', '#fcffa4'],
  turbo: ['#30123b', '#4662d7', '#36aaf9', '#1ae4b6', '#72fe5e', '#c8ef34', '#faba39', '#f66b19', '#7a0403'],
  coolwarm: ['#3b4cc0', '#6282ea', '#8db0fe', '#b8d0f9', '#dddcdc', '#f5c4ad', '#f49a7b', '#de604d', '#b40426'],
};

export type Rgb = [number, number, number];

function hexToRgb(hex: string): Rgb {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

const parsed: Record<string, Rgb[]> = {};
function anchors(name: ColormapName): Rgb[] {
  return (parsed[name] ??= ANCHORS[name].map(hexToRgb));
}

export function isColormapName(s: string): s is ColormapName {
  return (COLORMAP_NAMES as readonly string[]).includes(s);
}

/** sRGB colour (0–255 per channel) of `t` ∈ [0, 1] in the named map; t is clamped, NaN maps to 0. */
export function colormap(name: ColormapName, t: number): Rgb {
  const a = anchors(name);
  const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  const f = x * (a.length - 1);
  const i = Math.min(a.length - 2, Math.floor(f));
  const u = f - i;
  const p = a[i];
  const q = a[i + 1];
  return [p[0] + (q[0] - p[0]) * u, p[1] + (q[1] - p[1]) * u, p[2] + (q[2] - p[2]) * u];
}

/** CSS colour string of `t` in the named map. */
export function colormapCss(name: ColormapName, t: number): string {
  const [r, g, b] = colormap(name, t);
  return `rgb(${Math.round(r)},${Math.round(g)},${Math.round(b)})`;
}

/** RGBA8 lookup table with `size` entries (for a 1-D texture sampled at t). */
export function colormapTable(name: ColormapName, size = 256): Uint8Array {
  const out = new Uint8Array(size * 4);
  for (let i = 0; i < size; i++) {
    const [r, g, b] = colormap(name, i / (size - 1));
    out.set([Math.round(r), Math.round(g), Math.round(b), 255], i * 4);
  }
  return out;
}

/**
 * A categorical colour per expert (token strip, paths): hues spread by the golden angle so neighbouring expert ids
 * differ clearly even with 256 experts. HSL with fixed saturation/lightness for legibility on a dark background.
 */
export function expertColorCss(expert: number, numExperts: number): string {
  if (expert < 0 || expert >= numExperts) return 'transparent';
  const hue = (expert * 137.508) % 360;
  const light = 58 + ((expert * 7) % 3) * 6;
  return `hsl(${hue.toFixed(1)}, 70%, ${light}%)`;
}
