// Expert-parallel placement: which GPU serves each expert of each MoE layer, and what that does to per-GPU load.
//   contiguous   expert e on GPU ⌊e·G/E⌋ (blocks of E/G experts, as EP sharding does by default)
//   round-robin  expert e on GPU e mod G
//   balanced     EPLB-style: R extra replicas go one at a time to the expert with the most load per replica, then
//                replicas (heaviest first) go to the least-loaded GPU that still has a free slot and does not hold
//                that expert yet; an expert's load is split evenly over its replicas.
// Loads are assignments (tokens × k), per layer. Straggler ratio = max GPU load ÷ mean GPU load (1 = even).
// Capacity factor c: each GPU processes at most ⌈c · assignments / G⌉ per layer and step; the rest is dropped.

export type PlacementKind = 'contiguous' | 'round-robin' | 'balanced';

export interface Placement {
  kind: PlacementKind;
  gpus: number;
  /** Extra replicas per layer (balanced only). */
  replicas: number;
  /** [layer][expert]: the GPUs holding the expert; its load is split evenly among them. */
  hosts: number[][][];
}

export function fixedPlacement(kind: 'contiguous' | 'round-robin', layers: number, experts: number, gpus: number): Placement {
  checkGpus(experts, gpus);
  const host = (e: number) => (kind === 'contiguous' ? Math.floor((e * gpus) / experts) : e % gpus);
  const hosts = Array.from({ length: layers }, () => Array.from({ length: experts }, (_, e) => [host(e)]));
  return { kind, gpus, replicas: 0, hosts };
}

/** Balanced placement from observed loads u32 [layers, experts] (e.g. the whole trace's counts). */
export function balancedPlacement(loads: ArrayLike<number>, layers: number, experts: number, gpus: number, replicas: number): Placement {
  checkGpus(experts, gpus);
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > experts * (gpus - 1)) {
    throw new RangeError(`replicas must be an integer in [0, ${experts * (gpus - 1)}], got ${replicas}`);
  }
  const slotsPerGpu = Math.ceil((experts + replicas) / gpus);
  const hosts: number[][][] = [];
  for (let l = 0; l < layers; l++) {
    const load = (e: number) => loads[l * experts + e];
    const copies = new Array<number>(experts).fill(1);
    for (let r = 0; r < replicas; r++) {
      let best = -1;
      for (let e = 0; e < experts; e++) {
        if (copies[e] >= gpus) continue;
        if (best < 0 || load(e) / copies[e] > load(best) / copies[best]) best = e;
      }
      copies[best]++;
    }
    const items: { e: number; w: number }[] = [];
    for (let e = 0; e < experts; e++) for (let c = 0; c < copies[e]; c++) items.push({ e, w: load(e) / copies[e] });
    items.sort((a, b) => b.w - a.w || a.e - b.e);
    const gpuLoad = new Array<number>(gpus).fill(0), used = new Array<number>(gpus).fill(0);
    const layerHosts: number[][] = Array.from({ length: experts }, () => []);
    for (const { e, w } of items) {
      let g = -1;
      for (let i = 0; i < gpus; i++) {
        if (used[i] >= slotsPerGpu || layerHosts[e].includes(i)) continue;
        if (g < 0 || gpuLoad[i] < gpuLoad[g]) g = i;
      }
      layerHosts[e].push(g);
      gpuLoad[g] += w;
      used[g]++;
    }
    hosts.push(layerHosts);
  }
  return { kind: 'balanced', gpus, replicas, hosts };
}

function checkGpus(experts: number, gpus: number): void {
  if (!Number.isInteger(gpus) || gpus < 1 || gpus > experts) throw new RangeError(`GPU count must be an integer in [1, ${experts}], got ${gpus}`);
}

/** f64 [layers, gpus]: assignments each GPU processes, from loads u32 [layers, experts]. */
export function gpuLoads(p: Placement, loads: ArrayLike<number>, experts: number): Float64Array {
  const L = p.hosts.length, G = p.gpus;
  const out = new Float64Array(L * G);
  for (let l = 0; l < L; l++) {
    for (let e = 0; e < experts; e++) {
      const h = p.hosts[l][e];
      for (const g of h) out[l * G + g] += loads[l * experts + e] / h.length;
    }
  }
  return out;
}

/** max ÷ mean of one layer's GPU loads (1 when there is no load). */
export function stragglerRatio(layerLoads: ArrayLike<number>): number {
  let max = 0, sum = 0;
  for (let i = 0; i < layerLoads.length; i++) {
    max = Math.max(max, layerLoads[i]);
    sum += layerLoads[i];
  }
  return sum > 0 ? max / (sum / layerLoads.length) : 1;
}

/** Assignments over capacity ⌈c · total / G⌉ on each GPU of one layer (c ≤ 0 = unlimited: 0). */
export function droppedAtCapacity(layerLoads: ArrayLike<number>, capacityFactor: number): number {
  if (!(capacityFactor > 0)) return 0;
  let sum = 0;
  for (let i = 0; i < layerLoads.length; i++) sum += layerLoads[i];
  const cap = Math.ceil((capacityFactor * sum) / layerLoads.length);
  let dropped = 0;
  for (let i = 0; i < layerLoads.length; i++) dropped += Math.max(0, layerLoads[i] - cap);
  return dropped;
}

export interface PlacementSummary {
  kind: PlacementKind;
  gpus: number;
  replicas: number;
  /** [steps][layers × gpus] per-GPU loads. */
  steps: Float64Array[];
  /** Straggler ratio per layer, averaged over steps with load. */
  layerStraggler: number[];
  /** Mean and worst straggler ratio over every (step, layer) with load. */
  meanStraggler: number;
  worstStraggler: number;
  /** Share of all assignments dropped at the capacity factor. */
  droppedShare: number;
}

/** Per-step figures of a placement over step loads ([steps] of u32 [layers, experts]). */
export function summarizePlacement(p: Placement, stepLoads: readonly ArrayLike<number>[], experts: number, capacityFactor: number): PlacementSummary {
  const L = p.hosts.length, G = p.gpus;
  const layerSum = new Array<number>(L).fill(0), layerN = new Array<number>(L).fill(0);
  let sum = 0, n = 0, worst = 1, dropped = 0, total = 0;
  const steps = stepLoads.map((loads) => {
    const g = gpuLoads(p, loads, experts);
    for (let l = 0; l < L; l++) {
      const row = g.subarray(l * G, (l + 1) * G);
      const assignments = row.reduce((a, b) => a + b, 0);
      if (assignments === 0) continue;
      const r = stragglerRatio(row);
      layerSum[l] += r;
      layerN[l]++;
      sum += r;
      n++;
      worst = Math.max(worst, r);
      dropped += droppedAtCapacity(row, capacityFactor);
      total += assignments;
    }
    return g;
  });
  return {
    kind: p.kind,
    gpus: G,
    replicas: p.replicas,
    steps,
    layerStraggler: layerSum.map((s, l) => (layerN[l] > 0 ? s / layerN[l] : 1)),
    meanStraggler: n > 0 ? sum / n : 1,
    worstStraggler: worst,
    droppedShare: total > 0 ? dropped / total : 0,
  };
}

export interface PlacementOptions {
  gpus: number;
  /** Extra replicas per layer for the balanced placement. */
  replicas: number;
  capacityFactor: number;
  /** Positions per step (tokens; 1 for counts-only traces, whose positions are steps). */
  stepSize: number;
}

/**
 * The three placements side by side over positions [from, to) of a timeline, in steps of `stepSize`; the balanced
 * map is built from the loads of the same positions (what EPLB would have observed).
 */
export async function comparePlacements(
  timeline: { loadsBetween(from: number, to: number): Promise<Uint32Array> },
  from: number, to: number, layers: number, experts: number, o: PlacementOptions,
): Promise<{ steps: number; placements: PlacementSummary[] }> {
  const stepLoads: Uint32Array[] = [];
  for (let at = from; at < to; at += o.stepSize) stepLoads.push(await timeline.loadsBetween(at, Math.min(to, at + o.stepSize)));
  const total = new Float64Array(layers * experts);
  for (const s of stepLoads) s.forEach((v, i) => (total[i] += v));
  const placements = [
    fixedPlacement('contiguous', layers, experts, o.gpus),
    fixedPlacement('round-robin', layers, experts, o.gpus),
    balancedPlacement(total, layers, experts, o.gpus, o.replicas),
  ].map((p) => summarizePlacement(p, stepLoads, experts, o.capacityFactor));
  return { steps: stepLoads.length, placements };
}
