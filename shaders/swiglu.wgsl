// SwiGLU: out[t, i] = silu(gate[t, i]) · up[t, i], silu(g) = g / (1 + e^-g) = g · sigmoid(g).
// Reads gate and up from one buffer x: gate at x[t·x_stride + i], up at x[t·x_stride + up_offset + i]. The default
// layout (x_stride = 2I, up_offset = I) is a fused gate_up projection's output [T, 2I] (first I = gate, next I = up,
// as transformers splits `gate_up_proj`); separate projections written into one [T, 2I] buffer use it as is.
// One thread per output element in a grid-stride loop.

struct Params {
  tokens: u32,    // T
  inter: u32,     // I, output row length
  x_stride: u32,  // elements between consecutive rows of x (2I for a fused [T, 2I] buffer)
  up_offset: u32, // offset of up within a row of x (I for a fused buffer)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [T, x_stride]: gate at [0, I), up at [up_offset, up_offset + I)
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [T, I]

override WORKGROUP: u32 = 256u;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let count = params.tokens * params.inter;
  for (var i = gid.x; i < count; i += groups.x * WORKGROUP) {
    let t = i / params.inter;
    let c = i - t * params.inter;
    let row = t * params.x_stride;
    let g = x[row + c];
    let u = x[row + params.up_offset + c];
    // exp(-g) overflows to +inf for g < -88, giving g / inf = -0, the right limit.
    out[i] = g / (1.0 + exp(-g)) * u;
  }
}
