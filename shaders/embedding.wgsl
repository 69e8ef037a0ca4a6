// Embedding gather: out[t, c] = scale · table[id(t), c], id(t) = min(ids[ids_offset + t], vocab - 1).
// One thread per output element in a grid-stride loop (the grid is capped at the dispatch limit).
// Ids at or past `vocab` are clamped to the last row so a bad id never reads outside the table; the host is expected
// to validate ids it tokenised itself, this only keeps the GPU in bounds.
// `ids_offset` lets a step read its ids from a running token buffer (e.g. the one sampling appends to) in place.
// #include "lib/weights"

struct Params {
  tokens: u32,     // T rows to gather
  hidden: u32,     // H, row length of the table and of out
  vocab: u32,      // rows in the table (>= 1)
  ids_offset: u32, // index in ids of row 0's id
  scale: f32,      // Granite-MoE embedding_multiplier; 1 otherwise
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;       // [>= ids_offset + tokens] token ids
@group(0) @binding(2) var<storage, read> table: array<u32>;     // [vocab, hidden] in WEIGHT_DTYPE words
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [tokens, hidden]

override WORKGROUP: u32 = 256u;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let count = params.tokens * params.hidden;
  for (var i = gid.x; i < count; i += groups.x * WORKGROUP) {
    let t = i / params.hidden;
    let c = i - t * params.hidden;
    let id = min(ids[params.ids_offset + t], params.vocab - 1u);
    let e = id * params.hidden + c; // element index in the table (vocab·hidden < 2^32 is checked on the host)
    out[i] = decode_weight(table[weight_word(e)], e) * params.scale;
  }
}
