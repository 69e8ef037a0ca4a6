// Block-quantised weights for the GEMV kernels (gemv_quant, moe_expert_*_gemv), read 64 elements at a time: a
// "unit" of a row. A thread loads a unit's bytes together (16-byte loads where the format keeps them aligned; a
// 4-byte window shifted into place where it does not), decodes its scales once, and turns its codes into exact f32
// integers four at a time with masks and the 2^23 trick (bitcast(0x4b000000 | c) − 2^23 = c for c < 2^23: no
// integer-to-float conversion, which runs at a quarter of the FMA rate on NVIDIA GPUs). The kernels factor the scales
// out of the dot product, per segment of 16 elements:  Σ x·(s·q − m) = s·Σ x·q − m·Σ x.
// With x one-hot this is s·q − m with s·q exact, i.e. gguf-py's dequantised weight (tests/gpu/linear-quant).
//
// Units of a row of K elements (byte layouts in src/model/dtypes.ts):
//   Q4_K, Q5_K: unit p (0..3) of super-block b = sub-blocks 2p and 2p+1 = elements 256b + 64p .. +63; its 32 bytes
//     of nibbles (low nibbles: sub-block 2p; segments 0, 1 = sub-block 2p, 2, 3 = 2p+1), the 16-byte header (d,
//     dmin, 12 bytes of 6-bit scales and mins), Q5_K also the 32 bytes of fifth bits (bits 2p, 2p+1 used).
//     Super-blocks of 144 / 176 bytes keep every load 16-byte aligned.
//   Q6_K: unit p of super-block b = half h = p / 2, columns l in [16·(p % 2), +16): segment c (0..3) = elements
//     256b + 128h + 32c + l, each with its own int8 scale; 16 bytes of each of ql[64h + l], ql[64h + 32 + l],
//     qh[32h + l]. 210-byte super-blocks: loads through a 4-byte window.
//   Q8_0, MXFP4: unit u = blocks 2u, 2u + 1 = elements 64u .. +63 (segments 0, 1 = block 2u). A row of an odd
//     number of blocks ends on a half unit (segments 0, 1 only). 34- and 17-byte blocks: 4-byte window.
// The including shader defines `fn w_word(i: u32) -> u32` (32-bit word i of the weights) and
// `fn w_quad(i: u32) -> vec4<u32>` (16-byte unit i).
// #include "lib/quant"

// Everything a thread keeps of one unit: its codes, still packed (4-byte aligned in registers), and per segment the
// scale s and the offset m (Q4_K/Q5_K's dmin·min; 0 otherwise): weight = s·code − m.
struct QUnit {
  c: array<u32, 16>, // Q4_K: nibbles [0..7]; Q5_K: nibbles [0..7], fifth bits >> 2p [8..15]; Q6_K: ql, ql + 32,
                     // qh [0..3], [4..7], [8..11]; Q8_0: the two blocks' int8 [0..7], [8..15]; MXFP4: nibbles [0..3], [4..7]
  s: vec4<f32>,
  m: vec4<f32>,
}

// Formats whose weights subtract an offset (the kernels then need Σ x per segment).
override QU_HAS_MIN: bool = WEIGHT_DTYPE == 4u || WEIGHT_DTYPE == 5u;

// Units of a row of K elements (K a whole number of blocks).
fn qu_units(K: u32) -> u32 {
  return (K + 63u) / 64u;
}

// Segments of unit u that exist: 2 for the half unit that ends a row of an odd number of 32-element blocks.
fn qu_segments(u: u32, K: u32) -> u32 {
  return select(4u, 2u, 64u * u + 32u >= K);
}

// Element offset within the row of segment `seg` of unit u (16 consecutive elements).
fn qu_seg_offset(u: u32, seg: u32) -> u32 {
  if (WEIGHT_DTYPE == 6u) {
    let p = u & 3u;
    return 256u * (u >> 2u) + 128u * (p >> 1u) + 32u * seg + 16u * (p & 1u);
  }
  return 64u * u + 16u * seg;
}

// Four bytes starting at byte b (any alignment; without a branch, so lanes of different alignment do not diverge).
fn qu_word_at(b: u32) -> u32 {
  let s = (b & 3u) * 8u;
  return (w_word(b >> 2u) >> s) | select(w_word((b >> 2u) + 1u) << (32u - s), 0u, s == 0u);
}

// Sixteen bytes starting at byte b (any alignment), as four words.
fn qu_window(b: u32) -> vec4<u32> {
  return vec4<u32>(qu_word_at(b), qu_word_at(b + 4u), qu_word_at(b + 8u), qu_word_at(b + 12u));
}

// Byte i (0..3) of each word of v, as vec4 (x = byte 0).
fn qu_bytes(v: u32) -> vec4<u32> {
  return (vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

// Four bytes (each < 2^23) as exact floats, minus `bias`.
fn qu_exact(v: u32, bias: f32) -> vec4<f32> {
  return bitcast<vec4<f32>>(qu_bytes(v) | vec4<u32>(0x4b000000u)) - vec4<f32>(8388608.0 + bias);
}

fn qu_set4(q: ptr<function, QUnit>, at: u32, v: vec4<u32>) {
  (*q).c[at] = v.x;
  (*q).c[at + 1u] = v.y;
  (*q).c[at + 2u] = v.z;
  (*q).c[at + 3u] = v.w;
}

// Q4_K / Q5_K: the 6-bit scales (x, y) and mins (z, w) of sub-blocks 2p, 2p + 1 from the header's scale words.
fn qu_k4_scales(h: vec4<u32>, p: u32) -> vec4<u32> {
  // Bytes 0..3: scales of sub-blocks 0..3 (low 6 bits of A), mins (of B); 4..7 from C's nibbles and A/B's top bits.
  let sc = select(h.y & 0x3f3f3f3fu, (h.w & 0x0f0f0f0fu) | ((h.y >> 2u) & 0x30303030u), p >= 2u) >> (16u * (p & 1u));
  let mn = select(h.z & 0x3f3f3f3fu, ((h.w >> 4u) & 0x0f0f0f0fu) | ((h.z >> 2u) & 0x30303030u), p >= 2u) >> (16u * (p & 1u));
  return vec4<u32>(sc & 0xffu, (sc >> 8u) & 0xffu, mn & 0xffu, (mn >> 8u) & 0xffu);
}

// Unit u of the row starting at byte `row` (row a whole number of blocks; K its length).
fn qu_load(row: u32, u: u32, K: u32) -> QUnit {
  var q: QUnit;
  switch WEIGHT_DTYPE {
    case 4u, 5u: {
      let five = WEIGHT_DTYPE == 5u;
      let p = u & 3u;
      let at = (row + (u >> 2u) * select(144u, 176u, five)) >> 4u; // 16-byte unit of the super-block
      let h = w_quad(at);
      let qs = at + select(1u, 3u, five) + 2u * p;
      qu_set4(&q, 0u, w_quad(qs));
      qu_set4(&q, 4u, w_quad(qs + 1u));
      if (five) {
        qu_set4(&q, 8u, w_quad(at + 1u) >> vec4<u32>(2u * p));
        qu_set4(&q, 12u, w_quad(at + 2u) >> vec4<u32>(2u * p));
      }
      let sm = vec4<f32>(qu_k4_scales(h, p));
      let d = unpack2x16float(h.x);
      q.s = vec4<f32>(d.x * sm.x, d.x * sm.x, d.x * sm.y, d.x * sm.y);
      q.m = vec4<f32>(d.y * sm.z, d.y * sm.z, d.y * sm.w, d.y * sm.w);
    }
    case 6u: {
      let p = u & 3u;
      let at = row + (u >> 2u) * 210u;
      let l0 = 64u * (p >> 1u) + 16u * (p & 1u);
      qu_set4(&q, 0u, qu_window(at + l0));
      qu_set4(&q, 4u, qu_window(at + l0 + 32u));
      qu_set4(&q, 8u, qu_window(at + 128u + 32u * (p >> 1u) + 16u * (p & 1u)));
      // Scales of segment c: byte 8h + 2c + (p % 2) of the 16 at 192; d: the f16 at 208 (never straddles a word).
      let sc = at + 192u + 8u * (p >> 1u) + (p & 1u);
      let s4 = vec4<u32>(qu_word_at(sc), qu_word_at(sc + 4u), 0u, 0u);
      let signed = bitcast<vec4<i32>>(vec4<u32>(s4.x, s4.x >> 16u, s4.y, s4.y >> 16u) << vec4<u32>(24u)) >> vec4<u32>(24u);
      let d = unpack2x16float(w_word((at + 208u) >> 2u) >> ((at & 2u) * 8u)).x;
      q.s = vec4<f32>(d) * vec4<f32>(signed);
    }
    case 3u: {
      let at = row + u * 68u;
      let two = 64u * u + 32u < K;
      let d0 = qu_word_at(at);
      qu_set4(&q, 0u, qu_window(at + 2u));
      qu_set4(&q, 4u, qu_window(at + 18u));
      var d1 = 0.0;
      if (two) {
        d1 = unpack2x16float(qu_word_at(at + 34u)).x;
        qu_set4(&q, 8u, qu_window(at + 36u));
        qu_set4(&q, 12u, qu_window(at + 52u));
      }
      let d = unpack2x16float(d0).x;
      q.s = vec4<f32>(d, d, d1, d1);
    }
    default: { // MXFP4
      let at = row + u * 34u;
      let two = 64u * u + 32u < K;
      let e0 = qu_word_at(at) & 0xffu;
      qu_set4(&q, 0u, qu_window(at + 1u));
      var d1 = 0.0;
      if (two) {
        d1 = e8m0_half(qu_word_at(at + 17u) & 0xffu);
        qu_set4(&q, 4u, qu_window(at + 18u));
      }
      let d = e8m0_half(e0);
      q.s = vec4<f32>(d, d, d1, d1);
    }
  }
  return q;
}

// MXFP4 codes (one per byte, 0..15) → 2·e2m1 (0, 1, 2, 3, 4, 6, 8, 12, then negated; code 8 gives −0 here, which
// changes no sum).
fn qu_mxfp4(codes: u32) -> vec4<f32> {
  let c = qu_bytes(codes);
  let mag = (vec4<u32>(0xc8643210u) >> ((c & vec4<u32>(7u)) << vec4<u32>(2u))) & vec4<u32>(15u);
  let v = bitcast<vec4<f32>>(mag | vec4<u32>(0x4b000000u)) - vec4<f32>(8388608.0);
  return select(v, -v, (c & vec4<u32>(8u)) != vec4<u32>(0u));
}

// Codes of elements 4g .. 4g + 3 of segment `seg` of a unit, as exact f32 (signed where the format is).
fn qu_codes(q: QUnit, seg: u32, g: u32) -> vec4<f32> {
  switch WEIGHT_DTYPE {
    case 4u: {
      return qu_exact((q.c[4u * (seg & 1u) + g] >> (4u * (seg >> 1u))) & 0x0f0f0f0fu, 0.0);
    }
    case 5u: {
      let i = 4u * (seg & 1u) + g;
      let lo = (q.c[i] >> (4u * (seg >> 1u))) & 0x0f0f0f0fu;
      return qu_exact(lo | (((q.c[8u + i] >> (seg >> 1u)) & 0x01010101u) << 4u), 0.0);
    }
    case 6u: {
      let lo = (q.c[4u * (seg & 1u) + g] >> (4u * (seg >> 1u))) & 0x0f0f0f0fu;
      return qu_exact(lo | (((q.c[8u + g] >> (2u * seg)) & 0x03030303u) << 4u), 32.0);
    }
    case 3u: {
      return qu_exact(q.c[4u * seg + g] ^ 0x80808080u, 128.0);
    }
    default: {
      return qu_mxfp4((q.c[4u * (seg >> 1u) + g] >> (4u * (seg & 1u))) & 0x0f0f0f0fu);
    }
  }
}

// x·w over segment `seg` of unit q, given the segment's 16 x values and (QU_HAS_MIN) their sum.
fn qu_seg_dot(q: QUnit, seg: u32, xv: array<vec4<f32>, 4>, xsum: f32) -> f32 {
  var dq = 0.0;
  for (var g = 0u; g < 4u; g++) { dq += dot(xv[g], qu_codes(q, seg, g)); }
  if (QU_HAS_MIN) { return q.s[seg] * dq - q.m[seg] * xsum; }
  return q.s[seg] * dq;
}
