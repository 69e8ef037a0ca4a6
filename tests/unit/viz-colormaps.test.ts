import { describe, expect, it } from 'vitest';
import { COLORMAP_NAMES, colormap, colormapTable, expertColorCss, isColormapName } from '../../src/viz/colormaps';

describe('colormaps', () => {
  it('hits the published end points exactly and clamps outside [0, 1]', () => {
    expect(colormap('viridis', 0)).toEqual([0x44, 0x01, 0x54]);
    expect(colormap('viridis', 1)).toEqual([0xfd, 0xe7, 0x25]);
    expect(colormap('viridis', -3)).toEqual(colormap('viridis', 0));
    expect(colormap('viridis', 7)).toEqual(colormap('viridis', 1));
    expect(colormap('magma', Number.NaN)).toEqual(colormap('magma', 0));
  });

  it('is continuous: neighbouring table entries differ by little', () => {
    for (const name of COLORMAP_NAMES) {
      const t = colormapTable(name, 256);
      expect(t.length).toBe(1024);
      for (let i = 1; i < 256; i++) {
        for (let c = 0; c < 3; c++) expect(Math.abs(t[i * 4 + c] - t[(i - 1) * 4 + c])).toBeLessThanOrEqual(12);
        expect(t[i * 4 + 3]).toBe(255);
      }
    }
  });

  it('sequential maps get brighter from 0 to 1 (perceived luminance)', () => {
    const lum = ([r, g, b]: number[]) => 0.2126 * r + 0.7152 * g + 0.0722 * b;
    for (const name of ['viridis', 'magma', 'inferno'] as const) {
      expect(lum(colormap(name, 1))).toBeGreaterThan(lum(colormap(name, 0.5)));
      expect(lum(colormap(name, 0.5))).toBeGreaterThan(lum(colormap(name, 0)));
    }
  });

  it('recognises its names and gives distinct categorical colours to neighbouring experts', () => {
    expect(isColormapName('turbo')).toBe(true);
    expect(isColormapName('jet')).toBe(false);
    const colours = new Set(Array.from({ length: 64 }, (_, e) => expertColorCss(e, 64)));
    expect(colours.size).toBe(64);
    expect(expertColorCss(-1, 8)).toBe('transparent');
  });
});
