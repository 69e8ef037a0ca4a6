// What the dashboard's modules share: the state, the 3D scene, the snapshot pump, and the current model and stepper.
// App implements it; each module subscribes to what it draws from and derives its own data.
import type { GridScene } from '../viz/scene';
import type { BaselineStore } from './baseline';
import type { LoadedModel } from './models';
import type { OutputRecord } from './output-record';
import type { SnapshotPump } from './snapshots';
import type { DashboardState } from './state';
import type { StepListener, TokenStepper } from './stepper';

export interface Dashboard {
  readonly state: DashboardState;
  readonly scene: GridScene;
  readonly snapshots: SnapshotPump;
  /** What the model predicted along the text (next-token distributions, surprisal). */
  readonly output: OutputRecord;
  /** The original policy's routing and predictions while a what-if is on. */
  readonly baseline: BaselineStore;
  /** The model on screen (a running session or a config-only skeleton), or null before the first one. */
  readonly model: LoadedModel | null;
  /** The current model's stepper; null for a config-only model. */
  readonly stepper: TokenStepper | null;
  /** Hear every step of whichever model is current. */
  onStep(fn: StepListener): void;
}
