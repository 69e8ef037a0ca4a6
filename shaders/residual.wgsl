// Residual add: out = a + scale · b, element-wise (scale = Granite-MoE residual_multiplier, 1 otherwise).
// Two entry points, each with its own bindings:
//   add_inplace: acc = acc + scale · b, with acc bound once read_write (WebGPU forbids binding one buffer to two
//                writable bindings, and each element is read then written by the same thread, so this is safe);
//   add:         out = a + scale · b into a third buffer.
// One thread per element in a grid-stride loop.

struct Params {
  count: u32, // elements
  scale: f32, // multiplies b
}

@group(0) @binding(0) var<uniform> params: Params;

override WORKGROUP: u32 = 256u;

// add_inplace bindings
@group(0) @binding(1) var<storage, read_write> acc: array<f32>; // [count] residual stream, updated in place
@group(0) @binding(2) var<storage, read> branch: array<f32>;    // [count] branch output (b)

@compute @workgroup_size(WORKGROUP)
fn add_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < params.count; i += groups.x * WORKGROUP) {
    acc[i] = acc[i] + params.scale * branch[i];
  }
}

// add bindings (group 0 of a separate pipeline layout)
@group(0) @binding(1) var<storage, read> a: array<f32>;         // [count]
@group(0) @binding(2) var<storage, read> b: array<f32>;         // [count]
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [count]

@compute @workgroup_size(WORKGROUP)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = gid.x; i < params.count; i += groups.x * WORKGROUP) {
    out[i] = a[i] + params.scale * b[i];
  }
}
