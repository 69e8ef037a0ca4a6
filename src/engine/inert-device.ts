// A GPUDevice that makes nothing, for Gpu.planner(): building the decoder against it runs the same constructors (so the
// same pipelines are asked for, with the same constants) while allocating, uploading and compiling nothing. Every
// method returns an inert object that keeps its descriptor (a buffer its size and usage, a layout its entries); queue
// and encoder calls do nothing; limits and features are the real device's.

/** An object whose every unknown property is a method returning another inert object (made from its argument). */
function inert(label: string, own: Record<string, unknown> = {}): never {
  const target: Record<string | symbol, unknown> = { label, ...own };
  return new Proxy(target, {
    get(t, name) {
      if (name in t) return t[name];
      // Not a promise (awaiting an inert result gives the object), and no symbol protocols.
      if (name === 'then' || typeof name === 'symbol') return undefined;
      return (descriptor?: unknown) => {
        const d = typeof descriptor === 'object' && descriptor !== null ? (descriptor as { label?: string; size?: number; usage?: number }) : {};
        return inert(d.label ?? String(name), { descriptor, size: d.size, usage: d.usage });
      };
    },
  }) as never;
}

/** What an inert layout (from createPipelineLayout / createBindGroupLayout) was made from. */
export function inertDescriptor<T>(object: unknown): T | undefined {
  return (object as { descriptor?: T }).descriptor;
}

/** `limits`: what the planned build sees (the real device's, or a Gpu's view of them). */
export function inertDevice(real: GPUDevice, limits: GPUSupportedLimits = real.limits): GPUDevice {
  return inert(`inert(${real.label})`, {
    limits,
    features: real.features,
    queue: inert('queue'),
    lost: new Promise(() => {}),
    popErrorScope: async () => null,
  });
}
