// The grouped expert matmuls beside the dense matmul at the same FLOPs: a MoE step's k·T expert rows run through
// gate/up (K = H, N = 2I) and down (K = I, N = H) as two dense matmuls of M = k·T rows (shaders/matmul.wgsl, the
// same lib/matmul_core and tile as the expert kernels), with expert 0's matrices as W. Their FLOPs equal the expert
// matmuls' (6·T·k·H·I); only the row gather, the per-expert tiles and the epilogues differ.
import type { Gpu } from '../engine/gpu';
import { MatmulKernel, type MatmulTile } from '../engine/kernels/matmul';
import { filledBuffer, X_SEED } from './operands';
import type { GpuTimer, Timing } from './timing';

/** Tile shapes `bench-moe --tune` sweeps for the tiled expert kernels (and the dense matmul beside them). */
export const TILE_CANDIDATES: MatmulTile[] = [
  { WG_M: 16, WG_N: 16, TILE_K: 16 },
  { WG_M: 16, WG_N: 16, TILE_K: 8 },
  { WG_M: 8, WG_N: 16, TILE_K: 16 },
  { WG_M: 16, WG_N: 8, TILE_K: 16 },
  { WG_M: 8, WG_N: 8, TILE_K: 16 },
];

export const tileLabel = (t: MatmulTile): string => `${t.WG_M}x${t.WG_N} TK${t.TILE_K}`;

/** TFLOP/s of `flops` done in `us` microseconds. */
export const tflops = (flops: number, us: number): number => flops / (us * 1e6);

export interface DenseEquivalent {
  tile: MatmulTile;
  /** GPU µs of the gate/up product [kT, H] · [2I, H]ᵀ and of the down product [kT, I] · [H, I]ᵀ. */
  upUs: number;
  downUs: number;
  tflops: number;
}

/**
 * Times the dense gate/up and down products of a step of T tokens with k experts each (f32 weights [N, K], aligned
 * loads). gateUp / down: buffers whose first 2I·H / H·I floats are one expert's matrices.
 */
export async function denseEquivalent(
  gpu: Gpu,
  timer: GpuTimer,
  s: { T: number; k: number; H: number; I: number },
  w: { gateUp: GPUBuffer; down: GPUBuffer },
  tile: MatmulTile,
): Promise<DenseEquivalent> {
  const M = s.k * s.T;
  const x = filledBuffer(gpu, 'bench.dense.x', M * s.H * 4, 'f32', X_SEED); // [M, H], later down's output
  const mid = gpu.device.createBuffer({ label: 'bench.dense.mid', size: M * 2 * s.I * 4, usage: GPUBufferUsage.STORAGE }); // [M, 2I]
  const time = async (K: number, N: number, input: GPUBuffer, weights: GPUBuffer, out: GPUBuffer): Promise<number> => {
    const kernel = new MatmulKernel(gpu, { weightDtype: 'f32', weightLayout: 'nk', aligned: true, shader: 'matmul', tile });
    const b = kernel.bind('bench.dense', input, weights, out);
    kernel.setShape(b, { M, N, K });
    const t: Timing = await timer.measure((enc, reps) => {
      const pass = enc.beginComputePass({ label: 'bench.dense' });
      for (let i = 0; i < reps; i++) kernel.encode(pass, b, M, N);
      pass.end();
    }, { maxReps: 200 });
    b.uniforms.buffer.destroy();
    return 1000 * (t.gpuMs ?? t.wallMs);
  };
  try {
    const upUs = await time(s.H, 2 * s.I, x, w.gateUp, mid);
    const downUs = await time(s.I, s.H, mid, w.down, x); // mid's first M·I floats as h [M, I]
    return { tile, upUs, downUs, tflops: tflops(6 * s.T * s.k * s.H * s.I, upUs + downUs) };
  } finally {
    x.destroy();
    mid.destroy();
  }
}
