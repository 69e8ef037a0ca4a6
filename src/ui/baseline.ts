// The baseline of a what-if: the routing record and the predictions under the model's original policy, captured
// from the session just before the first what-if replaces them, and kept until the policy is the original again or
// the text changes. It covers the positions stepped before the what-if began.
import type { RoutingSnapshot } from '../engine/session-api';
import type { OutputCopy } from './output-record';

export interface Baseline {
  /** Tokens it covers: [0, position). */
  position: number;
  routing: RoutingSnapshot;
  output: OutputCopy;
}

export class BaselineStore {
  current: Baseline | null = null;
  private readonly listeners = new Set<() => void>();

  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  /** Keep the original policy's record; `routing` is a snapshot already queued behind the last step. */
  async capture(routing: Promise<RoutingSnapshot>, output: OutputCopy): Promise<void> {
    const snap = await routing;
    this.current = { position: snap.position, routing: snap, output };
    this.emit();
  }

  clear(): void {
    if (!this.current) return;
    this.current = null;
    this.emit();
  }

  private emit(): void {
    for (const fn of this.listeners) fn();
  }
}
