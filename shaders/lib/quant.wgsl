// Block-quantised weights (WEIGHT_DTYPE 3 = Q8_0, 4 = Q4_K, 5 = Q5_K, 6 = Q6_K, 7 = MXFP4; byte layouts in
// src/model/dtypes.ts), kept packed in GPU memory exactly as the GGUF file stores them and decoded in registers.
// A row of K elements is K / block-elements whole blocks; rows follow each other without padding, so blocks need not
// start on a 4-byte boundary (34-, 210- and 17-byte blocks): reads are byte-addressed.
// The unit of decoding is a 32-element sub-block (a Q8_0 or MXFP4 block, an eighth of a K-quant super-block): its
// scales are decoded once, then its 32 codes four at a time. Each weight is computed as gguf-py computes it in f32
// (scale products first, exact; one rounding at most), so decoded weights equal gguf-py's bit for bit (given normal
// f32 results: WGSL may flush subnormals).
// The including shader defines `fn w_word(i: u32) -> u32`: 32-bit word i of the weight tensor.
// #include "lib/weights"

const QUANT_FIRST: u32 = 3u;

fn is_quant() -> bool {
  return WEIGHT_DTYPE >= QUANT_FIRST;
}

// Bytes of one row of K elements (K a multiple of the block).
fn quant_row_bytes(K: u32) -> u32 {
  switch WEIGHT_DTYPE {
    case 3u: { return (K / 32u) * 34u; }
    case 4u: { return (K / 256u) * 144u; }
    case 5u: { return (K / 256u) * 176u; }
    case 6u: { return (K / 256u) * 210u; }
    default: { return (K / 32u) * 17u; }
  }
}

fn q_u8(b: u32) -> u32 {
  return (w_word(b >> 2u) >> ((b & 3u) * 8u)) & 0xffu;
}

// Four bytes from any byte offset (little-endian); the word after is read only when the four straddle it.
fn q_u32(b: u32) -> u32 {
  let s = (b & 3u) * 8u;
  let lo = w_word(b >> 2u);
  if (s == 0u) {
    return lo;
  }
  return (lo >> s) | (w_word((b >> 2u) + 1u) << (32u - s));
}

// An f16 field (never straddles a word in these layouts: it starts at an even byte).
fn q_f16(b: u32) -> f32 {
  return unpack2x16float(w_word(b >> 2u) >> ((b & 2u) * 8u)).x;
}

fn bytes4(w: u32) -> vec4<u32> {
  return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

fn signed_bytes4(w: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// MXFP4 codes → 2·e2m1 (0, 1, 2, 3, 4, 6, 8, 12, then the same negated).
fn mxfp4_doubled(c: vec4<u32>) -> vec4<f32> {
  let m = c & vec4<u32>(7u);
  let big = (vec4<u32>(2u) + (m & vec4<u32>(1u))) << ((m >> vec4<u32>(1u)) - vec4<u32>(1u));
  let v = vec4<i32>(select(m, big, m >= vec4<u32>(4u)));
  return vec4<f32>(select(v, -v, (c & vec4<u32>(8u)) != vec4<u32>(0u))); // code 8 is +0, as in ggml's table
}

// e8m0 exponent e → 2^(e − 128) (half the block scale, as ggml_e8m0_to_fp32_half).
fn e8m0_half(e: u32) -> f32 {
  return bitcast<f32>(select((e - 1u) << 23u, 0x00200000u << e, e < 2u));
}

// Q4_K / Q5_K: 6-bit (scale, min) of sub-block j from the 12 packed bytes at `at`.
fn k4_scale_min(at: u32, j: u32) -> vec2<f32> {
  if (j < 4u) {
    return vec2<f32>(f32(q_u8(at + j) & 63u), f32(q_u8(at + j + 4u) & 63u));
  }
  let packed = q_u8(at + j + 4u);
  return vec2<f32>(
    f32((packed & 15u) | ((q_u8(at + j - 4u) >> 6u) << 4u)),
    f32((packed >> 4u) | ((q_u8(at + j) >> 6u) << 4u)),
  );
}

// A decoded sub-block header: where its codes are and the scales that apply to them.
struct SubBlock {
  at: u32,       // byte offset of the (super-)block
  j: u32,        // K-quants: sub-block within the super-block (0..7)
  d: vec2<f32>,  // scale of elements 0..15 and 16..31 (equal except for Q6_K)
  m: f32,        // Q4_K/Q5_K: offset subtracted (dmin · min); 0 otherwise
}

// Scales of sub-block s of the row starting at byte `row`.
fn quant_sub(row: u32, s: u32) -> SubBlock {
  switch WEIGHT_DTYPE {
    case 3u: { // Q8_0: f16 d, 32 × int8
      let at = row + s * 34u;
      return SubBlock(at, 0u, vec2<f32>(q_f16(at)), 0.0);
    }
    case 4u, 5u: { // Q4_K / Q5_K: f16 d, f16 dmin, 12 B scales, (Q5_K: 32 B fifth bits), 128 B nibbles
      let at = row + (s >> 3u) * select(144u, 176u, WEIGHT_DTYPE == 5u);
      let j = s & 7u;
      let sm = k4_scale_min(at + 4u, j);
      return SubBlock(at, j, vec2<f32>(q_f16(at) * sm.x), q_f16(at + 2u) * sm.y);
    }
    case 6u: { // Q6_K: 128 B low nibbles, 64 B 2-bit highs, 16 × int8 scales, f16 d
      let at = row + (s >> 3u) * 210u;
      let j = s & 7u;
      let d = q_f16(at + 208u);
      let sc = at + 192u + 2u * j; // scales of elements 32j .. 32j+15 and 32j+16 .. 32j+31 of the block
      let d0 = d * f32(bitcast<i32>(q_u8(sc) << 24u) >> 24u);
      let d1 = d * f32(bitcast<i32>(q_u8(sc + 1u) << 24u) >> 24u);
      return SubBlock(at, j, vec2<f32>(d0, d1), 0.0);
    }
    default: { // MXFP4: e8m0 exponent, 16 B nibbles (low nibbles = elements 0..15, high = 16..31)
      let at = row + s * 17u;
      return SubBlock(at, 0u, vec2<f32>(e8m0_half(q_u8(at))), 0.0);
    }
  }
}

// Elements 4g .. 4g+3 of a sub-block, as gguf-py computes them: (scale products) · code − offset.
fn quant_group(b: SubBlock, g: u32) -> vec4<f32> {
  let d = select(b.d.x, b.d.y, g >= 4u);
  switch WEIGHT_DTYPE {
    case 3u: {
      return signed_bytes4(q_u32(b.at + 2u + 4u * g)) * d;
    }
    case 4u, 5u: {
      let five = WEIGHT_DTYPE == 5u;
      let qs = b.at + select(16u, 48u, five) + 32u * (b.j >> 1u);
      var q = (bytes4(w_word((qs >> 2u) + g)) >> vec4<u32>(4u * (b.j & 1u))) & vec4<u32>(15u);
      if (five) { q |= ((bytes4(w_word(((b.at + 16u) >> 2u) + g)) >> vec4<u32>(b.j)) & vec4<u32>(1u)) << vec4<u32>(4u); }
      return vec4<f32>(q) * d - b.m;
    }
    case 6u: {
      let half = b.j >> 2u;
      let g4 = b.j & 3u;
      let low = (bytes4(q_u32(b.at + 64u * half + 32u * (g4 & 1u) + 4u * g)) >> vec4<u32>(4u * (g4 >> 1u))) & vec4<u32>(15u);
      let high = (bytes4(q_u32(b.at + 128u + 32u * half + 4u * g)) >> vec4<u32>(2u * g4)) & vec4<u32>(3u);
      return vec4<f32>(vec4<i32>(low | (high << vec4<u32>(4u))) - vec4<i32>(32)) * d;
    }
    default: {
      let codes = bytes4(q_u32(b.at + 1u + 4u * (g & 3u))) >> vec4<u32>(4u * (g >> 2u));
      return mxfp4_doubled(codes & vec4<u32>(15u)) * d;
    }
  }
}

// The 32 weights of sub-block s of the row starting at byte `row`, elements 4g .. 4g+3 in entry g.
fn quant_sub32(row: u32, s: u32) -> array<vec4<f32>, 8> {
  let b = quant_sub(row, s);
  var out: array<vec4<f32>, 8>;
  for (var g = 0u; g < 8u; g++) { out[g] = quant_group(b, g); }
  return out;
}
