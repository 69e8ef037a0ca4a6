// Corpus statistics and figures: load by domain and the domain–expert mutual information on records with a known
// answer, the samples-file reader's errors, and SVG figures that carry their labels and one cell per value.
import { describe, expect, it } from 'vitest';
import { CorpusAccumulator, corpusFromJson, specialisation } from '../../src/analysis/corpus';
import { barsSvg, colourAt, heatmapSvg } from '../../src/analysis/figures';
import { K_MAX, NO_EXPERT } from '../../src/model/limits';

/** A one-layer record where every token chooses `experts`. */
function record(tokens: number, experts: number[], E = 4) {
  const chosen = new Uint32Array(tokens * K_MAX).fill(NO_EXPERT);
  for (let t = 0; t < tokens; t++) experts.forEach((e, s) => (chosen[t * K_MAX + s] = e));
  return { tokens, numLayers: 1, numExperts: E, chosen };
}

describe('corpus specialisation', () => {
  it('domains with experts of their own carry 1 bit; domains sharing the same experts carry none', () => {
    const split = new CorpusAccumulator(1, 4);
    split.add('prose', record(10, [0, 1]));
    split.add('code', record(6, [2, 3]));
    split.add('code', record(4, [3, 2]));
    const s = split.stats();
    expect(s.domains).toEqual(['code', 'prose']);
    expect(s.tokens).toEqual([10, 10]);
    const [layer] = specialisation(s);
    expect(layer.mutualInformation).toBeCloseTo(1, 12);
    expect(layer.loadByDomain).toEqual([[0, 0, 0.5, 0.5], [0.5, 0.5, 0, 0]]);
    expect(layer.domainMix[2]).toEqual([1, 0]);

    const shared = new CorpusAccumulator(1, 4);
    shared.add('prose', record(3, [0, 1]));
    shared.add('code', record(7, [1, 0]));
    expect(specialisation(shared.stats())[0].mutualInformation).toBeCloseTo(0, 12);
  });

  it('MI of an uneven split: H(domain) when every expert is one domain’s', () => {
    const acc = new CorpusAccumulator(1, 4);
    acc.add('a', record(1, [0, 1]));
    acc.add('b', record(3, [2, 3]));
    const h = -(0.25 * Math.log2(0.25) + 0.75 * Math.log2(0.75));
    expect(specialisation(acc.stats())[0].mutualInformation).toBeCloseTo(h, 12);
  });

  it('reads samples files and names the bad field', () => {
    expect(corpusFromJson({ samples: [{ text: 'x', domain: 'code', extra: 1 }] }, 's.json')).toEqual([{ text: 'x', domain: 'code' }]);
    expect(() => corpusFromJson({ samples: [{ text: 'x' }] }, 's.json')).toThrow(/s\.json: samples\[0\] field "domain"/);
    expect(() => corpusFromJson({}, 's.json')).toThrow(/s\.json: expected an array/);
  });
});

describe('figures', () => {
  it('a heatmap has its title, axis labels, ticks, legend and one coloured cell per value in each panel', () => {
    const values = [[0, 1, 2], [3, 4, 5]];
    const svg = heatmapSvg({
      title: 'Load <by> domain', xLabel: 'expert', yLabel: 'layer', xTicks: ['0', '1', '2'], yTicks: ['L0', 'L1'],
      panels: [{ title: 'prose', values }, { title: 'code', values }], valueLabel: 'share', scale: 'sequential',
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    for (const label of ['Load &lt;by&gt; domain', '>expert<', '>layer<', '>L1<', '>prose<', '>code<', '>share<']) expect(svg).toContain(label);
    const cells = [...svg.matchAll(/<rect [^>]*fill="(rgb\([^"]+\))"><title>([^<]+)<\/title>/g)];
    expect(cells).toHaveLength(12);
    expect(cells[5][1]).toBe(colourAt(5, 0, 5, 'sequential'));
    expect(cells[5][2]).toBe('L1, 2: 5');
  });

  it('colour scales: sequential runs from the lowest to the highest; diverging is white at 0', () => {
    expect(colourAt(0, 0, 1, 'sequential')).toBe('rgb(68,1,84)');
    expect(colourAt(1, 0, 1, 'sequential')).toBe('rgb(253,231,37)');
    expect(colourAt(0, -2, 1, 'diverging')).toBe('rgb(247,247,247)');
    expect(colourAt(-2, -2, 1, 'diverging')).toBe('rgb(33,102,172)');
  });

  it('grouped bars: one bar per series and group, with a legend entry per series', () => {
    const svg = barsSvg({ title: 'MI', xLabel: 'layer', yLabel: 'bits', groups: ['0', '1', '2'], series: [{ name: 'final', values: [0.1, 0.2, 0.3] }, { name: 'early', values: [0.5, 0.4, 0.2] }] });
    expect([...svg.matchAll(/<title>(final|early), \d: /g)]).toHaveLength(6);
    expect(svg).toContain('>final<');
    expect(svg).toContain('>bits<');
  });
});
