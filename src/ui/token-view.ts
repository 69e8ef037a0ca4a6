// The token side of the view: the token strip (coloured by each token's top expert in the focus layer), the
// selected token's path through the 3D grid, and the list of tokens the selected expert took.
import { expertColorCss } from '../viz/colormaps';
import { CELL_KIND, instanceOf, MIN_BAR_HEIGHT } from '../viz/layout';
import { visible } from '../viz/panels/heatmap';
import { barHeights, ringTokens, tokenPath, tokensOfExpert, topExpert } from '../viz/panels/stats';
import type { Dashboard } from './context';
import { el, make, onNextFrame } from './dom';
import type { ChangeKind } from './state';
import { TokenStrip } from './token-strip';

/** Chips listed for the selected expert at most (the latest ones). */
const MAX_CHIPS = 300;

export class TokenView {
  private readonly strip: TokenStrip;

  constructor(private readonly d: Dashboard) {
    this.strip = new TokenStrip(el('strip'), (p) => d.state.selectToken(p));
    d.state.subscribe((kind) => this.onState(kind));
    d.snapshots.subscribe(() => this.drawAll());
    d.output.onChange(() => this.scheduleStrip());
    d.onStep((kind) => {
      const stepper = d.stepper;
      if (!stepper) return;
      // Generate mode grows the plan with every token it decodes.
      if (kind === 'plan' || this.strip.length !== stepper.planned.length) this.strip.setTokens(stepper.planned);
      const sel = d.state.selectedToken;
      if (sel !== null && sel >= stepper.position) d.state.selectToken(null);
      else this.updateStrip();
    });
  }

  private onState(kind: ChangeKind): void {
    if (kind === 'model') this.strip.setTokens([]);
    if (kind === 'model' || kind === 'selection' || kind === 'layout') this.drawAll();
    else if (kind === 'focus') this.updateStrip();
    else if (kind === 'view' || kind === 'layers') this.updatePath();
  }

  private drawAll(): void {
    this.updateStrip();
    this.updatePath();
    this.updateExpertList();
  }

  /** Strip update at the next animation frame (surprisal arrives in many small read-backs). */
  private readonly scheduleStrip = onNextFrame(() => this.updateStrip());

  private updateStrip(): void {
    const s = this.d.snapshots.current;
    const model = this.d.model;
    const stepper = this.d.stepper;
    if (!model || !stepper) return;
    const focus = this.d.state.params.focusLayer;
    const E = model.config.numExperts;
    const rows = s ? ringTokens(s) : 0;
    const known = (p: number) => s !== null && p < rows && p < s.position;
    this.strip.update({
      position: stepper.position,
      selected: this.d.state.selectedToken,
      colorOf: (p) => (known(p) ? expertColorCss(topExpert(s!, p, focus), E) : null),
      bitsOf: (p) => this.d.output.surprisal[p] / Math.LN2,
      droppedIn: (p) => known(p) && model.config.moeLayers[focus] && topExpert(s!, p, focus) < 0,
    });
  }

  /** The selected token's route as a line through the tops of the bars of the experts that processed it. */
  private updatePath(): void {
    const s = this.d.snapshots.current;
    const layout = this.d.scene.layout;
    const token = this.d.state.selectedToken;
    if (!s || !layout || token === null) {
      this.d.scene.setPath(null);
      return;
    }
    const { mode, heightScale } = this.d.state.params;
    const shown = this.d.state.visibility();
    const points: [number, number, number][] = [];
    // Through the shown layers only: a hidden or un-soloed layer has no bars to pass over.
    for (const step of tokenPath(s, token)) {
      if (!shown[step.layer]) continue;
      const heights = barHeights(s, step.layer, mode, heightScale, undefined, this.d.scene.atlas, layout.colFirst);
      for (const { expert } of step.experts) {
        const i = instanceOf(layout, step.layer, expert);
        if (i >= 0) points.push([layout.rect[i * 4], Math.max(MIN_BAR_HEIGHT, heights[i - layout.firstExpert[step.layer]]) + 0.15, layout.rect[i * 4 + 1]]);
      }
    }
    this.d.scene.setPath(points);
  }

  /** The tokens the selected expert took, as clickable chips. */
  private updateExpertList(): void {
    const box = el('expert-tokens');
    const layout = this.d.scene.layout;
    const i = this.d.state.selectedCell;
    if (!layout || i < 0 || layout.kind[i] !== CELL_KIND.routed) {
      box.replaceChildren(make('div', 'note', 'Click an expert in the grid to list the tokens it took.'));
      return;
    }
    const l = layout.layer[i];
    const e = layout.expert[i];
    const s = this.d.snapshots.current;
    const tokens = this.d.stepper?.processed ?? [];
    const positions = s ? tokensOfExpert(s, l, e).filter((p) => p < tokens.length) : [];
    const head = make('div', '', `Layer ${l}, expert ${e}: ${positions.length} token${positions.length === 1 ? '' : 's'}`);
    const list = make('div', 'chips');
    for (const p of positions.slice(-MAX_CHIPS)) {
      const chip = make('button', 'chip', visible(tokens[p].text));
      chip.title = `#${p}`;
      chip.addEventListener('click', () => this.d.state.selectToken(p));
      list.append(chip);
    }
    box.replaceChildren(head, list);
  }
}
