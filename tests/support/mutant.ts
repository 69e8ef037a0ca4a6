// Deliberately broken kernels: a Gpu sharing the test device whose copy of one shader has a text substitution.
// Each kernel's tests run one mutant through the same check and expect it to fail, proving the check can fail.
import { Gpu } from '../../src/engine/gpu';
import { nodeShader } from '../../src/engine/node/device-node';
import { testGpu } from './gpu';

export async function mutantGpu(shader: string, from: string | RegExp, to: string): Promise<Gpu> {
  const base = await testGpu();
  return new Gpu(base.device, base.adapter, (name) => {
    const code = nodeShader(name);
    if (name !== shader) return code;
    const mutated = code.replace(from, to);
    if (mutated === code) throw new Error(`mutation ${String(from)} does not occur in shaders/${shader}.wgsl`);
    return mutated;
  });
}
