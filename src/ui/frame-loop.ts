// The frame loop: constant work per frame (the scene's compute pass and draw, labels re-projected only when the
// camera moved), no buffer mapping. Keeps the CPU time of recent frames for the corner readout and the tests.
import type { GridScene } from '../viz/scene';
import { el } from './dom';

/** Frame CPU times kept. */
const FRAME_HISTORY = 1024;
/** Frames averaged by the readout. */
const READOUT_FRAMES = 60;

export class FrameLoop {
  /** CPU milliseconds of the last FRAME_HISTORY frames (ring) and frames drawn so far. */
  readonly times = new Float64Array(FRAME_HISTORY);
  frames = 0;
  /** True while the frame callback runs (tests count buffer mappings made inside it). */
  inFrame = false;
  private readonly stats = el('frame-stats');

  constructor(
    private readonly scene: GridScene,
    private readonly onCameraMoved: () => void,
  ) {}

  start(): void {
    requestAnimationFrame(this.tick);
  }

  /** A new grid: its first frames build the render pipeline, so the readout starts after them. */
  restart(): void {
    this.stats.textContent = `${this.scene.layout?.count ?? 0} instances`;
  }

  private readonly tick = () => {
    const t0 = performance.now();
    this.inFrame = true;
    try {
      this.scene.frame();
      if (this.scene.takeCameraMoved()) this.onCameraMoved();
    } finally {
      this.inFrame = false;
    }
    this.times[this.frames % FRAME_HISTORY] = performance.now() - t0;
    this.frames++;
    if (this.frames % READOUT_FRAMES === 0 && this.scene.layout) this.showStats();
    requestAnimationFrame(this.tick);
  };

  /** Mean CPU time of the last READOUT_FRAMES frames, in the corner of the view. */
  private showStats(): void {
    let sum = 0;
    for (let i = 1; i <= READOUT_FRAMES; i++) sum += this.times[(this.frames - i) % FRAME_HISTORY];
    this.stats.textContent = `frame CPU ${(sum / READOUT_FRAMES).toFixed(2)} ms (mean of ${READOUT_FRAMES}) · ${this.scene.layout?.count ?? 0} instances`;
  }

  /** CPU ms of the most recent `n` frames, oldest first. */
  recent(n: number): number[] {
    const count = Math.min(n, this.frames, FRAME_HISTORY);
    const out: number[] = [];
    for (let i = this.frames - count; i < this.frames; i++) out.push(this.times[i % FRAME_HISTORY]);
    return out;
  }
}
