import { describe, expect, it } from 'vitest';
import { alignTokens, labelAt } from '../../src/ui/align';

describe('token alignment', () => {
  it('walks byte-level BPE pieces through the text', () => {
    const text = 'The jury said: x = 1;';
    expect(alignTokens(text, ['The', ' jury', ' said', ':', ' x', ' =', ' 1', ';'])).toEqual([0, 3, 8, 13, 14, 16, 18, 20]);
  });

  it('skips special tokens, allows a prefix space, and places split characters', () => {
    const text = 'café 🙂 ok';
    // Llama style: <s>, "▁caf" shown as " caf", é as two byte pieces, the emoji as four.
    const pieces = ['<s>', ' caf', '⟨C3⟩', '⟨A9⟩', ' ', '⟨F0⟩', '⟨9F⟩', '⟨99⟩', '⟨82⟩', ' ok'];
    const off = alignTokens(text, pieces);
    expect(off[0]).toBeNull();
    expect(off[1]).toBe(0);
    expect(off[2]).toBe(3);
    expect(off[3]).toBe(3);
    expect(off[4]).toBe(4);
    expect(off[5]).toBe(5);
    expect(off[9]).toBe(7);
  });

  it('labels a token with the span its first non-space character is in', () => {
    const text = 'The jury said';
    const spans = [
      { start: 0, end: 3, label: 'DET' },
      { start: 4, end: 8, label: 'NOUN' },
      { start: 9, end: 13, label: 'VERB' },
    ];
    expect(labelAt(text, 3, spans)).toBe('NOUN'); // " jury" starts at the space
    expect(labelAt(text, 6, spans)).toBe('NOUN');
    expect(labelAt(text, 9, spans)).toBe('VERB');
    expect(labelAt(text, null, spans)).toBeNull();
    expect(labelAt('a  ', 1, spans)).toBeNull();
  });
});
