// Float64 rotary frequencies for every RoPE scaling type, from the formulas alone (no f32 rounding anywhere):
// the ideal values the f32 tables of src/model/rope.ts (and transformers') approximate.
import type { RopeScaling } from '../model/rope';

export function ropeInvFreqRef(scaling: RopeScaling, dim: number, theta: number, seqLen = 0): Float64Array {
  const plain = (base: number) => Float64Array.from({ length: dim / 2 }, (_, i) => 1 / Math.pow(base, (2 * i) / dim));
  switch (scaling.type) {
    case 'default':
      return plain(theta);
    case 'linear':
      return plain(theta).map((v) => v / scaling.factor);
    case 'dynamic': {
      const L = Math.max(seqLen, scaling.maxPositions);
      const base = theta * Math.pow((scaling.factor * L) / scaling.maxPositions - (scaling.factor - 1), dim / (dim - 2));
      return plain(base);
    }
    case 'yarn': {
      const corr = (rot: number) => (dim * Math.log(scaling.originalMaxPositions / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
      let low = corr(scaling.betaFast);
      let high = corr(scaling.betaSlow);
      if (scaling.truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      return plain(theta).map((extra, i) => {
        const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
        return (extra / scaling.factor) * ramp + extra * (1 - ramp);
      });
    }
    case 'llama3': {
      const lowWavelen = scaling.originalMaxPositions / scaling.lowFreqFactor;
      const highWavelen = scaling.originalMaxPositions / scaling.highFreqFactor;
      return plain(theta).map((inv) => {
        const wavelen = (2 * Math.PI) / inv;
        if (wavelen < highWavelen) return inv;
        if (wavelen > lowWavelen) return inv / scaling.factor;
        const smooth = (scaling.originalMaxPositions / wavelen - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor);
        return (1 - smooth) * (inv / scaling.factor) + smooth * inv;
      });
    }
  }
}
