// Weight storage shared by every kernel that reads checkpoint tensors.
// Weights live in GPU memory as raw 32-bit words (`array<u32>` / `array<vec4<u32>>`):
//   WEIGHT_DTYPE 0 = f32  : one element per word (bit pattern of the float)
//   WEIGHT_DTYPE 1 = f16  : two elements per word, element 2j in the low 16 bits
//   WEIGHT_DTYPE 2 = bf16 : two elements per word, element 2j in the low 16 bits
// Decoding happens in registers; compute and accumulation are f32. No shader-f16 feature needed.
override WEIGHT_DTYPE: u32 = 0u;

// Index of the word that holds element i.
fn weight_word(i: u32) -> u32 {
  return select(i, i >> 1u, WEIGHT_DTYPE != 0u);
}

// Element i (its position only matters for the half it occupies) from the word that holds it.
fn decode_weight(word: u32, i: u32) -> f32 {
  if (WEIGHT_DTYPE == 0u) {
    return bitcast<f32>(word);
  }
  let hi = (i & 1u) == 1u;
  if (WEIGHT_DTYPE == 1u) {
    let pair = unpack2x16float(word);
    return select(pair.x, pair.y, hi);
  }
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, hi));
}

// Both elements of a 16-bit word pair (f16/bf16 only): (element 2j, element 2j+1).
fn decode_pair(word: u32) -> vec2<f32> {
  if (WEIGHT_DTYPE == 1u) {
    return unpack2x16float(word);
  }
  return vec2<f32>(bitcast<f32>(word << 16u), bitcast<f32>(word & 0xffff0000u));
}
