// Routing what-if policy helpers: the model's own policy, validation, and the per-step capacity.
import type { MoeConfig } from '../../model/config';
import type { RoutingPolicy } from '../session-api';
import { K_MAX } from '../routing-buffers';

/** The policy that reproduces the model as trained (its own k, no noise, T = 1, its capacity factor, nothing ablated). */
export function defaultPolicy(config: MoeConfig): RoutingPolicy {
  return {
    topK: null,
    noiseStd: 0,
    noiseSeed: 0,
    temperature: 1,
    capacityFactor: config.router.capacityFactor,
    overflow: 'drop',
    ablated: new Uint8Array(config.numLayers * config.numExperts),
  };
}

/** The k a policy asks for on this model. */
export function effectiveTopK(config: MoeConfig, policy: RoutingPolicy): number {
  return policy.topK ?? config.router.topK;
}

/** Throws a clear error for a policy the kernels cannot run. */
export function validatePolicy(config: MoeConfig, policy: RoutingPolicy): void {
  const k = effectiveTopK(config, policy);
  if (!Number.isInteger(k) || k < 1 || k > K_MAX || k > config.numExperts) {
    throw new RangeError(`routing policy: topK ${k} must be an integer in [1, min(${K_MAX}, experts = ${config.numExperts})]`);
  }
  if (!(policy.temperature > 0)) throw new RangeError(`routing policy: temperature ${policy.temperature} must be > 0`);
  if (!(policy.noiseStd >= 0)) throw new RangeError(`routing policy: noiseStd ${policy.noiseStd} must be ≥ 0`);
  if (!(policy.capacityFactor >= 0)) throw new RangeError(`routing policy: capacityFactor ${policy.capacityFactor} must be ≥ 0`);
  if (policy.overflow !== 'drop' && policy.overflow !== 'reroute') {
    throw new RangeError(`routing policy: overflow "${String(policy.overflow)}" must be 'drop' or 'reroute'`);
  }
  const cells = config.numLayers * config.numExperts;
  if (policy.ablated.length !== cells) {
    throw new RangeError(`routing policy: ablated has ${policy.ablated.length} entries, expected layers × experts = ${cells}`);
  }
}

/** Per-expert capacity for a step of `tokens` tokens: ceil(factor · tokens · k / experts); 0 = unlimited. */
export function expertCapacity(capacityFactor: number, tokens: number, k: number, experts: number): number {
  if (capacityFactor <= 0) return 0;
  // (the small epsilon keeps e.g. 1.2 · 10 / 4 = 3.0000000000000004 from rounding up to 4)
  return Math.max(1, Math.ceil((capacityFactor * tokens * k) / experts - 1e-9));
}
