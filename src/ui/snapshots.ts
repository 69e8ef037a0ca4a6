// The snapshot pump: throttled, asynchronous CPU copies of the engine's routing record, handed to every subscriber
// (panels, metrics history, compare mode, timings). Never on the frame path. The copy is submitted in turn with the
// steps (so it sees a whole step), but its mapping is awaited outside the step queue: stepping never waits for it.
import type { ModelSession, RoutingSnapshot } from '../engine/session-api';
import type { TokenStepper } from './stepper';

/** Snapshots at most this often while tokens are being stepped (short: a step's panels must follow within 100 ms). */
export const SNAPSHOT_INTERVAL_MS = 60;

export type SnapshotListener = (s: RoutingSnapshot) => void | Promise<void>;

export class SnapshotPump {
  /** The latest snapshot of the current model, or null before the first one. */
  current: RoutingSnapshot | null = null;
  /** Snapshots taken so far (tests wait on this). */
  count = 0;
  /** performance.now() when the latest snapshot's subscribers had all drawn it. */
  deliveredAt = 0;
  private source: { session: ModelSession; stepper: TokenStepper } | null = null;
  private readonly listeners = new Set<SnapshotListener>();
  private busy = false;
  private dirty = false;
  private pump: Promise<void> = Promise.resolve();

  constructor(private readonly onError: (e: unknown) => void) {}

  subscribe(fn: SnapshotListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Follow another model (or none); the old snapshot is dropped. */
  attach(session: ModelSession | null, stepper: TokenStepper | null): void {
    this.source = session && stepper ? { session, stepper } : null;
    this.current = null;
  }

  /** Ask for a snapshot soon (coalesced: many requests while one is taken give one more). */
  request(): void {
    this.dirty = true;
    if (!this.busy) this.pump = this.run();
  }

  /** Resolves once no snapshot is pending. */
  async settled(): Promise<void> {
    while (this.busy || this.dirty) await this.pump;
  }

  private async run(): Promise<void> {
    this.busy = true;
    try {
      while (this.dirty && this.source) {
        const started = performance.now();
        const { session, stepper } = this.source;
        // The copy is encoded in the step queue; the returned promise is only the mapping, awaited outside it. Requests
        // made before it is encoded (a restore's plan and its steps, say) are answered by it.
        const pending = await stepper.run(async () => {
          this.dirty = false;
          return { snap: session.snapshot() };
        });
        const snap = await pending.snap;
        if (this.source?.session !== session) break;
        this.current = snap;
        this.count++;
        for (const fn of this.listeners) await fn(snap);
        this.deliveredAt = performance.now();
        const rest = SNAPSHOT_INTERVAL_MS - (performance.now() - started);
        if (rest > 0) await new Promise((r) => setTimeout(r, rest));
      }
    } catch (e) {
      this.onError(e);
    } finally {
      this.busy = false;
    }
  }
}
