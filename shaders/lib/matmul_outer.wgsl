// The inner step of the register-blocked matmuls (matmul.wgsl, lib/moe_expert_tile): acc += the outer product of
// shared row k (x column k times W row k). Thread (tx, ty) owns rows 4ty .. 4ty+3 and TILE_M/2 + 4ty .., columns
// 4tx .. 4tx+3 and TILE_N/2 + 4tx ..; acc[2i] / acc[2i + 1] are row i's two 4-column groups. The including shader
// declares xs_tile [k][m / 4], ws_tile [k][n / 4], acc: array<vec4<f32>, 16>, WG_M and WG_N.
fn multiply_k(tx: u32, ty: u32, k: u32) {
  let a0 = xs_tile[k][ty];
  let a1 = xs_tile[k][WG_M + ty];
  let b0 = ws_tile[k][tx];
  let b1 = ws_tile[k][WG_N + tx];
  acc[0] += a0.x * b0;  acc[1] += a0.x * b1;
  acc[2] += a0.y * b0;  acc[3] += a0.y * b1;
  acc[4] += a0.z * b0;  acc[5] += a0.z * b1;
  acc[6] += a0.w * b0;  acc[7] += a0.w * b1;
  acc[8] += a1.x * b0;  acc[9] += a1.x * b1;
  acc[10] += a1.y * b0; acc[11] += a1.y * b1;
  acc[12] += a1.z * b0; acc[13] += a1.z * b1;
  acc[14] += a1.w * b0; acc[15] += a1.w * b1;
}
