// Row softmax with temperature: out[r, j] = exp(x[r, j]/T - m_r) / Σ_j' exp(x[r, j']/T - m_r), m_r = max_j x[r, j]/T.
// One workgroup per row. Pass 1: each thread keeps an online (max, sum) over its strided columns, rescaling the sum
// when the max grows; a shared-memory tree merges the pairs. Pass 2 writes the normalised values.
// -inf inputs give 0; a row that is all -inf gives NaN (0/0), as the mathematical softmax is undefined there.

struct Params {
  rows: u32,            // number of rows
  cols: u32,            // row length
  stride: u32,          // elements between consecutive rows of x and out (>= cols)
  inv_temperature: f32, // 1 / T, T > 0
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [rows, stride]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [rows, stride]

override WORKGROUP: u32 = 256u; // a power of two
var<workgroup> red_max: array<f32, WORKGROUP>;
var<workgroup> red_sum: array<f32, WORKGROUP>;

const LOWEST: f32 = -3.4028234e38; // start of a max; exp(LOWEST - m) = 0 for any finite m

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  if (row >= params.rows) { return; }
  let base = row * params.stride;
  var m = LOWEST;
  var s = 0.0;
  for (var i = lid; i < params.cols; i += WORKGROUP) {
    let v = x[base + i] * params.inv_temperature;
    if (v > m) {
      s = s * exp(m - v) + 1.0;
      m = v;
    } else {
      s += exp(v - m);
    }
  }
  red_max[lid] = m;
  red_sum[lid] = s;
  workgroupBarrier();
  for (var stride = WORKGROUP / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      let m1 = red_max[lid];
      let m2 = red_max[lid + stride];
      let mm = max(m1, m2);
      red_sum[lid] = red_sum[lid] * exp(m1 - mm) + red_sum[lid + stride] * exp(m2 - mm);
      red_max[lid] = mm;
    }
    workgroupBarrier();
  }
  let row_max = red_max[0];
  let inv_sum = 1.0 / red_sum[0];
  for (var i = lid; i < params.cols; i += WORKGROUP) {
    out[base + i] = exp(x[base + i] * params.inv_temperature - row_max) * inv_sum;
  }
}
