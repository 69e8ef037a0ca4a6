import { describe, expect, it } from 'vitest';
import { DEFAULT_PARAMS, defaultParams, sanitizeParams, toPolicy } from '../../src/ui/params';
import { decodeUrlState, encodeUrlState, type UrlState } from '../../src/ui/url-state';

const base = (): UrlState => ({
  model: null,
  params: defaultParams(),
  text: null,
  sample: null,
  position: 0,
  hiddenLayers: [],
  token: null,
});

describe('URL state', () => {
  it('is empty for the default state and round-trips a changed one', () => {
    expect(encodeUrlState(base())).toBe('');
    const s = base();
    s.model = 'config:mixtral-8x7b.json';
    s.params = { ...s.params, topK: 3, mode: 'dropped', colormap: 'magma', collapseDense: false, capacityFactor: 1.25 };
    s.text = 'a <b>&c= "quoted" text\nwith a newline';
    s.position = 17;
    s.hiddenLayers = [1, 3];
    s.token = 5;
    const back = decodeUrlState(encodeUrlState(s), 8);
    expect(back).toEqual(s);
  });

  it('falls back to defaults for bad values and drops layers the model does not have', () => {
    const s = decodeUrlState('topK=99&mode=sideways&colormap=jet&temperature=abc&pos=-4&hide=1,x,2,12&soloLayer=40', 4);
    expect(s.params.topK).toBe(8);
    expect(s.params.mode).toBe(DEFAULT_PARAMS.mode);
    expect(s.params.colormap).toBe(DEFAULT_PARAMS.colormap);
    expect(s.params.temperature).toBe(DEFAULT_PARAMS.temperature);
    expect(s.params.soloLayer).toBe(-1);
    expect(s.position).toBe(0);
    expect(s.hiddenLayers).toEqual([1, 2]);
  });
});

describe('params', () => {
  it('turns into a routing policy that keeps the model k unless overridden', () => {
    const mask = new Uint8Array(8);
    expect(toPolicy(defaultParams(), 2, mask).topK).toBeNull();
    expect(toPolicy({ ...defaultParams(), topK: 2 }, 2, mask).topK).toBeNull();
    const p = toPolicy({ ...defaultParams(), topK: 3, overflow: 'drop', capacityFactor: 1 }, 2, mask);
    expect(p).toMatchObject({ topK: 3, overflow: 'drop', capacityFactor: 1 });
    expect(p.ablated).toBe(mask);
  });

  it('clamps focus and solo layers to the model', () => {
    const p = sanitizeParams({ ...defaultParams(), focusLayer: 9, soloLayer: 2 }, 4);
    expect(p.focusLayer).toBe(0);
    expect(p.soloLayer).toBe(2);
  });
});

import { parseSamples, sampleLabel } from '../../src/ui/samples';

describe('samples file', () => {
  it('accepts arrays and {samples} objects with domain/label/category', () => {
    const a = parseSamples([{ text: 'x = 1;', domain: 'code' }, { text: 'The jury said', label: 'news', title: 'A01' }], 'samples.json');
    expect(a).toEqual([{ text: 'x = 1;', domain: 'code' }, { text: 'The jury said', domain: 'news', title: 'A01' }]);
    expect(parseSamples({ samples: [{ text: 't', category: 'c' }] }, 's.json')[0].domain).toBe('c');
    expect(sampleLabel(a[1], 1)).toBe('2. [news] A01');
  });

  it('keeps genre and part-of-speech spans of the demo model samples (moescope-samples/1)', () => {
    const file = {
      schema: 'moescope-samples/1',
      samples: [{ id: 'brown/ca01', domain: 'prose', genre: 'news', title: 'news: The jury', text: 'The jury said',
        words: ['The', 'jury', 'said'], tags: ['at', 'nn', 'vbd'], pos: ['DET', 'NOUN', 'VERB'], spans: [0, 3, 4, 8, 9, 13] }],
    };
    const [s] = parseSamples(file, 'samples.json');
    expect(s).toMatchObject({ domain: 'prose', genre: 'news', title: 'news: The jury' });
    expect(s.posSpans).toEqual([{ start: 0, end: 3, label: 'DET' }, { start: 4, end: 8, label: 'NOUN' }, { start: 9, end: 13, label: 'VERB' }]);
    expect(() => parseSamples({ samples: [{ ...file.samples[0], spans: [0, 3] }] }, 'samples.json')).toThrow(/two spans entries per tag/);
    expect(() => parseSamples({ samples: [{ ...file.samples[0], spans: [0, 3, 4, 8, 9, 99] }] }, 'samples.json')).toThrow(/word 2/);
  });

  it('names the file and the field of a bad sample', () => {
    expect(() => parseSamples({}, 'm/samples.json')).toThrow(/m\/samples.json.*"samples" array/);
    expect(() => parseSamples([{ text: '' , domain: 'x'}], 's.json')).toThrow(/samples\[0\] field "text"/);
    expect(() => parseSamples([{ text: 'a' }], 's.json')).toThrow(/samples\[0\] needs a domain/);
  });
});
