// Says where NaN or Inf reached a router: the engine flags such a token and layer on the GPU and leaves the token
// unrouted there, so the grid and panels never draw it; this line, under the header, says which token and layer.
import type { RoutingSnapshot } from '../engine/session-api';
import type { Dashboard } from './context';
import { el, make } from './dom';

export class NumericsNotice {
  private box: HTMLElement | null = null;

  constructor(private readonly d: Dashboard) {
    d.snapshots.subscribe((s) => this.show(s));
    d.onStep((kind) => {
      if (kind === 'plan' || kind === 'reset') this.clear();
    });
  }

  private show(s: RoutingSnapshot): void {
    if (s.nonFinite.length === 0) return this.clear();
    const first = s.nonFinite[0];
    const token = this.d.stepper?.processed[first.position]?.text;
    const layers = new Set(s.nonFinite.map((f) => f.layer)).size;
    const text =
      `NaN or Inf reached the router ${s.nonFinite.length} time${s.nonFinite.length === 1 ? '' : 's'} ` +
      `(${layers} layer${layers === 1 ? '' : 's'}), first at token ${first.position}${token === undefined ? '' : ` ${JSON.stringify(token)}`} ` +
      `in layer ${first.layer} (${first.logits ? 'its input activations or router weights' : 'its routing scores'}): ` +
      'those tokens are not routed there and not drawn as routing.';
    if (!this.box) {
      this.box = make('div', 'error nonfinite');
      this.box.setAttribute('role', 'status');
      el('errors').append(this.box);
    }
    this.box.textContent = text;
  }

  private clear(): void {
    this.box?.remove();
    this.box = null;
  }
}
