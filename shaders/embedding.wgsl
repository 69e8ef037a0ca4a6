// Embedding gather: out[t, c] = scale · table[id(t), c], id(t) = min(ids[ids_offset + t], vocab - 1).
// One thread per output element in a grid-stride loop (the grid is capped at the dispatch limit).
// Ids at or past `vocab` are clamped to the last row so a bad id never reads outside the table; the host is expected
// to validate ids it tokenised itself, this only keeps the GPU in bounds.
// `ids_offset` lets a step read its ids from a running token buffer (e.g. the one sampling appends to) in place.
// Block-quantised tables (lib/quant) are gathered one 32-element sub-block per thread (hidden % 256 == 0 for K-quants,
// % 32 otherwise, checked on the host); the decoded values are those of gguf-py's dequantisation, bit for bit.
// #include "lib/quant"

struct Params {
  tokens: u32,     // T rows to gather
  hidden: u32,     // H, row length of the table and of out
  vocab: u32,      // rows in the table (>= 1)
  ids_offset: u32, // index in ids of row 0's id
  scale: f32,      // Granite-MoE embedding_multiplier; 1 otherwise
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;       // [>= ids_offset + tokens] token ids
@group(0) @binding(2) var<storage, read> table: array<u32>;     // [vocab, hidden] in WEIGHT_DTYPE words or blocks
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [tokens, hidden]

override WORKGROUP: u32 = 256u;

fn w_word(i: u32) -> u32 {
  return table[i];
}

fn gather_quant(gid: u32, stride: u32) {
  let subs = params.hidden / 32u; // sub-blocks per row
  let row_bytes = quant_row_bytes(params.hidden);
  for (var u = gid; u < params.tokens * subs; u += stride) {
    let t = u / subs;
    let s = u - t * subs;
    let id = min(ids[params.ids_offset + t], params.vocab - 1u);
    let v = quant_sub32(id * row_bytes, s);
    let o = t * params.hidden + 32u * s;
    for (var g = 0u; g < 8u; g++) {
      for (var c = 0u; c < 4u; c++) { out[o + 4u * g + c] = v[g][c] * params.scale; }
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  if (is_quant()) {
    gather_quant(gid.x, groups.x * WORKGROUP);
    return;
  }
  let count = params.tokens * params.hidden;
  for (var i = gid.x; i < count; i += groups.x * WORKGROUP) {
    let t = i / params.hidden;
    let c = i - t * params.hidden;
    let id = min(ids[params.ids_offset + t], params.vocab - 1u);
    let e = id * params.hidden + c; // element index in the table (vocab·hidden < 2^32 is checked on the host)
    out[i] = decode_weight(table[weight_word(e)], e) * params.scale;
  }
}
