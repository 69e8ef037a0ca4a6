// The 3D view: a three.js WebGPURenderer on the engine's own GPUDevice, drawing the layers × experts grid as one
// InstancedMesh whose per-instance heights and colours come from a storage attribute that a GPU compute pass
// (InstanceValuesPass) fills from the engine's routing buffers every frame. No buffer is mapped on the frame path.
//
// CPU work per frame is constant in the model's history: one command encoder with one dispatch, the orbit controls'
// damping, and one render of a scene of three objects (grid, token path, floor).
import * as THREE from 'three/webgpu';
import { color, float, instanceIndex, max, mix, normalLocal, positionLocal, select, storage, texture, uniform, varying, vec2, vec3 } from 'three/tsl';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { colormapTable, type ColormapName } from './colormaps';
import { InstanceValuesPass, VALUES_PER_INSTANCE, type RoutingViewSources, type ViewMode } from './instance-values';
import { framingView, gridLayout, MIN_BAR_HEIGHT, pickBar, type GridLayout, type LayoutOptions } from './layout';
import { gpuBufferOf } from './three-internals';

const FOV = 40;

export interface ViewSettings {
  mode: ViewMode;
  heightScale: number;
  /** Heights saturate at this multiple of a fair share (load and probability modes). */
  maxRatio: number;
  colormap: ColormapName;
}

export interface LabelAnchor {
  text: string;
  /** Screen position in CSS pixels relative to the canvas, or null when behind the camera. */
  x: number;
  y: number;
}

export class GridScene {
  /** Replaced by setDevice after a lost device. */
  renderer: THREE.WebGPURenderer;
  readonly camera: THREE.PerspectiveCamera;
  readonly controls: OrbitControls;
  private readonly scene = new THREE.Scene();
  private readonly lut: THREE.DataTexture;
  private readonly hoverU = uniform(-1);
  private readonly selectedU = uniform(-1);
  private readonly pathLine: THREE.Line;
  private grid: {
    layout: GridLayout;
    mesh: THREE.InstancedMesh;
    values: THREE.StorageBufferAttribute;
    rects: THREE.StorageBufferAttribute;
    pass: InstanceValuesPass;
  } | null = null;
  private readonly raycaster = new THREE.Raycaster();
  /** [instances] bar heights as drawn (from the latest snapshot, on the CPU) and which layers are shown, for picking. */
  private pickHeights: Float32Array = new Float32Array(0);
  private pickVisible: readonly boolean[] = [];
  private cameraMoved = true;
  /** The device is gone: frames are skipped until setDevice gives a new one. */
  private lost = false;

  constructor(
    readonly canvas: HTMLCanvasElement,
    private device: GPUDevice,
    /** MSAA; worth turning off on software adapters (SwiftShader), where it multiplies the raster cost. */
    private readonly antialias = true,
  ) {
    this.renderer = this.makeRenderer(device);
    this.scene.background = new THREE.Color(0x0f1116);
    this.camera = new THREE.PerspectiveCamera(FOV, 1, 0.1, 10000);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.enableDamping = true;
    this.controls.addEventListener('change', () => (this.cameraMoved = true));

    this.lut = new THREE.DataTexture(colormapTable('viridis'), 256, 1, THREE.RGBAFormat);
    this.lut.colorSpace = THREE.SRGBColorSpace;
    this.lut.magFilter = THREE.LinearFilter;
    this.lut.minFilter = THREE.LinearFilter;
    this.lut.needsUpdate = true;

    const pathMaterial = new THREE.LineBasicNodeMaterial({ color: 0xffffff, depthTest: false, transparent: true });
    this.pathLine = new THREE.Line(new THREE.BufferGeometry(), pathMaterial);
    this.pathLine.renderOrder = 10;
    this.pathLine.visible = false;
    this.pathLine.frustumCulled = false;
    this.scene.add(this.pathLine);
  }

  async init(): Promise<void> {
    await this.renderer.init();
  }

  private makeRenderer(device: GPUDevice): THREE.WebGPURenderer {
    void device.lost.then(() => {
      if (device === this.device) this.lost = true;
    });
    const renderer = new THREE.WebGPURenderer({ canvas: this.canvas, device, antialias: this.antialias });
    renderer.setPixelRatio(Math.min(globalThis.devicePixelRatio || 1, 2));
    return renderer;
  }

  /**
   * Draw with a new device (the old one was lost): a new renderer on the same canvas, camera and controls kept. The
   * grid is dropped with the old device's buffers; setModel builds it again.
   */
  async setDevice(device: GPUDevice): Promise<void> {
    const size = this.renderer.getSize(new THREE.Vector2());
    this.disposeGrid();
    const old = this.renderer;
    this.device = device;
    this.lost = false;
    this.renderer = this.makeRenderer(device);
    await this.renderer.init();
    this.renderer.setSize(size.x, size.y, false);
    this.lut.needsUpdate = true;
    this.cameraMoved = true;
    // Its GPU objects belong to the lost device; what dispose touches there does nothing.
    void Promise.resolve(old.dispose()).catch(() => undefined);
  }

  get layout(): GridLayout | null {
    return this.grid?.layout ?? null;
  }

  /** Build the grid for a model and bind its routing buffers; replaces any previous grid. */
  async setModel(
    config: Parameters<typeof gridLayout>[0],
    sources: RoutingViewSources,
    layoutOptions: LayoutOptions,
    view: ViewSettings,
    visible: readonly boolean[],
  ): Promise<void> {
    const layout = gridLayout(config, layoutOptions);
    this.disposeGrid();
    const n = layout.count;
    const values = new THREE.StorageBufferAttribute(new Float32Array(n * VALUES_PER_INSTANCE), VALUES_PER_INSTANCE);
    values.name = 'Grid.instanceValues';
    const rects = new THREE.StorageBufferAttribute(layout.rect.slice(), 4);
    rects.name = 'Grid.instanceRects';

    const v = storage(values, 'vec4', n).toReadOnly().element(instanceIndex);
    const r = storage(rects, 'vec4', n).toReadOnly().element(instanceIndex);
    const shown = v.w;
    const height = max(v.x, float(MIN_BAR_HEIGHT)).mul(shown);
    const material = new THREE.MeshBasicNodeMaterial();
    // Unit box centred at the origin -> footprint rect.z × rect.w, standing on y = 0, `height` tall.
    material.positionNode = vec3(
      positionLocal.x.mul(r.z).mul(shown),
      positionLocal.y.add(0.5).mul(height),
      positionLocal.z.mul(r.w).mul(shown),
    ).add(vec3(r.x, 0, r.y));
    const t = varying(v.y);
    const index = varying(float(instanceIndex));
    const mapped = texture(this.lut, vec2(t.clamp(0, 1), 0.5)).rgb;
    // t < 0 marks cells without a colour-map value: ablated expert (-4), empty layer (-3), dense layer (-2),
    // shared expert (-1).
    const neutral = select(
      t.lessThan(-3.5),
      color(0x8c2431),
      select(t.lessThan(-2.5), color(0x3a4150), select(t.lessThan(-1.5), color(0x2b303b), color(0xb59a6a))),
    );
    const base = select(t.lessThan(0), neutral, mapped);
    const shade = float(0.62).add(normalLocal.y.mul(0.38)).add(normalLocal.x.abs().mul(0.1));
    const hovered = index.sub(this.hoverU).abs().lessThan(0.5);
    const selected = index.sub(this.selectedU).abs().lessThan(0.5);
    const lit = base.mul(shade);
    const white = color(0xffffff);
    material.colorNode = select(selected, mix(lit, white, 0.55), select(hovered, mix(lit, white, 0.3), lit));

    const geometry = new THREE.BoxGeometry(1, 1, 1);
    const mesh = new THREE.InstancedMesh(geometry, material, n);
    // Positions come from the storage attribute, not instanceMatrix: bounds are unknown to three.js, so never cull.
    mesh.frustumCulled = false;
    mesh.name = 'Grid';
    this.scene.add(mesh);

    // Make three.js create the attribute buffers now, so the compute pass can bind them.
    await this.renderer.compileAsync(this.scene, this.camera);
    let out: GPUBuffer;
    try {
      out = gpuBufferOf(this.renderer, values);
    } catch {
      this.renderer.render(this.scene, this.camera);
      out = gpuBufferOf(this.renderer, values);
    }
    const pass = new InstanceValuesPass(this.device, layout, sources, out);
    // A grid rebuilt for the same model keeps its atlas; another model's is dropped (its owner clears it too).
    if (this.atlas?.length !== layout.numLayers * layout.numExperts) this.atlas = null;
    pass.setAtlas(this.atlas);
    this.grid = { layout, mesh, values, rects, pass };
    this.setView(view);
    this.setVisibility(visible);
    this.frameGrid();
  }

  setView(view: ViewSettings): void {
    if (!this.grid) return;
    this.grid.pass.setParams(view.mode, view.heightScale, view.maxRatio);
    this.lut.image.data = colormapTable(view.colormap);
    this.lut.needsUpdate = true;
  }

  setVisibility(visible: readonly boolean[]): void {
    this.grid?.pass.setVisibility(visible);
  }

  /** The causal atlas (f32 [layers, experts] Δ log-likelihood per ablated expert) for the 'atlas' mode, or null. */
  setAtlas(delta: Float32Array | null): void {
    this.atlas = delta;
    this.grid?.pass.setAtlas(delta);
  }

  /** What setAtlas gave, for the CPU's copy of the bar heights (picking, the token path). */
  atlas: Float32Array | null = null;

  /** Experts the user ablated (u8 [layers, experts]), drawn in their own colour. */
  setAblated(mask: Uint8Array): void {
    this.grid?.pass.setAblated(mask);
  }

  setHighlight(hovered: number, selected: number): void {
    this.hoverU.value = hovered;
    this.selectedU.value = selected;
  }

  /** Points of the drawn token path (0 when none is drawn). */
  pathLength = 0;

  /** A polyline through world points (the selected token's path), or null to hide it. Changes only on selection. */
  setPath(points: readonly [number, number, number][] | null): void {
    const g = this.pathLine.geometry;
    this.pathLength = points && points.length >= 2 ? points.length : 0;
    if (!points || points.length < 2) {
      this.pathLine.visible = false;
      return;
    }
    g.setAttribute('position', new THREE.Float32BufferAttribute(points.flat(), 3));
    g.computeBoundingSphere();
    this.pathLine.visible = true;
  }

  /** Put the camera where the whole grid is in view. */
  frameGrid(): void {
    if (!this.grid) return;
    const { position, target } = framingView(this.grid.layout, FOV, this.camera.aspect || 1);
    this.camera.position.set(...position);
    this.controls.target.set(...target);
    this.camera.near = 0.1;
    this.camera.far = Math.max(100, Math.hypot(...position) * 4);
    this.camera.updateProjectionMatrix();
    this.controls.update();
    this.cameraMoved = true;
  }

  /** Zoom the camera onto one layer's row (module view → experts). */
  frameLayer(layer: number): void {
    if (!this.grid) return;
    const g = this.grid.layout;
    const cx = (g.bounds.minX + g.bounds.maxX) / 2;
    const z = g.rowZ[layer];
    const half = (g.bounds.maxX - g.bounds.minX) / 2 + 1;
    const fov = (FOV * Math.PI) / 180;
    const dist = Math.max(4, (half / (Math.tan(fov / 2) * (this.camera.aspect || 1))) * 1.15);
    const elev = (35 * Math.PI) / 180;
    this.controls.target.set(cx, 0, z);
    this.camera.position.set(cx + dist * 0.05, dist * Math.sin(elev), z + dist * Math.cos(elev));
    this.camera.updateProjectionMatrix();
    this.controls.update();
    this.cameraMoved = true;
  }

  resize(width: number, height: number): void {
    if (width <= 0 || height <= 0) return;
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.cameraMoved = true;
  }

  /** One frame: refresh instance values from the routing buffers on the GPU, then draw. */
  frame(): void {
    if (this.lost) return;
    if (this.grid) {
      const encoder = this.device.createCommandEncoder({ label: 'Grid.frame' });
      this.grid.pass.encode(encoder);
      this.device.queue.submit([encoder.finish()]);
    }
    this.controls.update();
    this.renderer.render(this.scene, this.camera);
  }

  /** True once after the camera moved (so overlay labels are re-projected only then). */
  takeCameraMoved(): boolean {
    const moved = this.cameraMoved;
    this.cameraMoved = false;
    return moved;
  }

  /** What picking tests against: the bars' heights ([instances], world units) and the shown layers. */
  setPickBars(heights: Float32Array, visible: readonly boolean[]): void {
    this.pickHeights = heights;
    this.pickVisible = visible;
  }

  /** The bar under a canvas point (CSS pixels from the canvas's top-left), nearest the camera, or −1. */
  pick(x: number, y: number): number {
    if (!this.grid) return -1;
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    this.raycaster.setFromCamera(new THREE.Vector2((x / w) * 2 - 1, -(y / h) * 2 + 1), this.camera);
    const { origin, direction } = this.raycaster.ray;
    return pickBar(this.grid.layout, this.pickHeights, this.pickVisible, [origin.x, origin.y, origin.z], [direction.x, direction.y, direction.z]);
  }

  /** Whether the camera is on the +x side / +z side of the grid's centre (overlay labels go on the near edges). */
  cameraSide(): { plusX: boolean; plusZ: boolean } {
    const t = this.controls.target;
    return { plusX: this.camera.position.x > t.x, plusZ: this.camera.position.z > t.z };
  }

  /** Screen position (CSS pixels) of a world point, or null when it is behind the camera. */
  project(x: number, y: number, z: number): { x: number; y: number } | null {
    const p = new THREE.Vector3(x, y, z).project(this.camera);
    if (p.z > 1) return null;
    return { x: ((p.x + 1) / 2) * this.canvas.clientWidth, y: ((1 - p.y) / 2) * this.canvas.clientHeight };
  }

  /** The renderer's storage buffer of per-instance values ([instances] vec4<f32>), for tests to read back. */
  valuesBuffer(): GPUBuffer | null {
    return this.grid ? gpuBufferOf(this.renderer, this.grid.values) : null;
  }

  /** PNG of the current view (renders a frame first so the canvas holds one). */
  async toPng(): Promise<Blob> {
    this.frame();
    return new Promise((resolve, reject) =>
      this.canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('canvas.toBlob gave no image'))), 'image/png'),
    );
  }

  private disposeGrid(): void {
    if (!this.grid) return;
    this.scene.remove(this.grid.mesh);
    this.grid.mesh.geometry.dispose();
    (this.grid.mesh.material as THREE.Material).dispose();
    this.grid.mesh.dispose();
    this.grid.pass.destroy();
    this.grid = null;
  }

  dispose(): void {
    this.disposeGrid();
    this.controls.dispose();
    this.renderer.dispose();
  }
}
