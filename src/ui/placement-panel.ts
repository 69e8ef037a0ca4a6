// The expert-parallel placement panel of a replayed trace: for a GPU count and capacity factor, the per-GPU token load
// of contiguous, round-robin and EPLB-style balanced expert maps over the tokens replayed so far, side by side
// (src/trace/placement.ts). Computed on request, never on the frame path.
import { TraceSession } from '../loading/trace-session';
import { comparePlacements } from '../trace/placement';
import type { Dashboard } from './context';
import { el, make } from './dom';
import { showError } from './messages';

export class PlacementPanel {
  constructor(private readonly d: Dashboard) {
    d.state.subscribe((kind) => {
      if (kind !== 'model') return;
      el('placement-panel').hidden = !(d.model?.session instanceof TraceSession);
      el('placement').replaceChildren();
    });
    el('placement-run').addEventListener('click', () => void this.run().catch(showError));
  }

  private async run(): Promise<void> {
    const session = this.d.model?.session;
    if (!(session instanceof TraceSession)) return;
    const gpus = Number(el<HTMLInputElement>('placement-gpus').value);
    const capacityFactor = Number(el<HTMLInputElement>('placement-cf').value);
    const { numExperts: E } = session.config;
    if (!Number.isInteger(gpus) || gpus < 1 || gpus > E) throw new Error(`GPUs must be a whole number from 1 to ${E}`);
    const L = session.trace.meta.moeLayers.length;
    const from = session.range.start, to = from + session.position;
    if (to === from) throw new Error('Step into the trace first: the placement is computed over the tokens replayed so far.');
    const interval = session.timeline.interval;
    const stepSize = Math.max(1, Math.ceil(256 / interval)) * interval;
    const { steps, placements } = await comparePlacements(session.timeline, from, to, L, E, { gpus, replicas: gpus, capacityFactor, stepSize });
    const head = make('tr');
    for (const h of ['placement', 'mean straggler', 'worst', `dropped at ${capacityFactor}`, 'worst layer']) head.append(make('th', '', h));
    const rows = placements.map((p) => {
      const worstLayer = p.layerStraggler.indexOf(Math.max(...p.layerStraggler));
      const tr = make('tr');
      const cells = [
        p.kind === 'balanced' ? `balanced (${p.replicas} replicas)` : p.kind,
        p.meanStraggler.toFixed(2),
        p.worstStraggler.toFixed(2),
        `${(100 * p.droppedShare).toFixed(1)} %`,
        `L${session.trace.meta.moeLayers[worstLayer]} (${p.layerStraggler[worstLayer].toFixed(2)})`,
      ];
      for (const c of cells) tr.append(make('td', '', c));
      return tr;
    });
    const table = make('table', 'placement-table');
    table.append(head, ...rows);
    const note = make('div', 'note', `${session.position} tokens in ${steps} steps of ${stepSize}; straggler = max ÷ mean GPU load per layer and step.`);
    el('placement').replaceChildren(table, note);
  }
}
