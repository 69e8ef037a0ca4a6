// A short first-run tour of the view: what a bar, a colour and a row are, how to step, where the output is, and how
// to open one's own model. Shown once (remembered in localStorage), reopened from the header's "?" button.
import { el, make } from './dom';

const STORAGE_KEY = 'moescope.tour';

const STEPS: [string, string][] = [
  ['Layers × experts', 'Each bar is one expert of one MoE layer. Rows are layers (L0 at the front), columns are expert ids; the ids keep their colour in every view.'],
  ['Height and colour', 'A bar’s height and colour say how many tokens the expert took against a fair share of its layer (legend, top right of the view). Red: ablated expert; tan: shared expert; grey: dense layer.'],
  ['Step through a text', 'Step ▶ (or →) runs the next token. The strip colours each token by its top expert; hover a bar for its figures, click it to list its tokens, click a token to draw its path.'],
  ['What the model does', 'The right panel shows the next-token prediction and each token’s surprisal; routing what-ifs (k, noise, temperature, capacity, ablation) are compared with the original routing.'],
  ['Your own model', 'Open a Hugging Face MoE folder (config.json, *.safetensors, tokenizer.json) with “open folder…”, drop it on the page, or pick an example from the model list.'],
];

export class Tour {
  private step = 0;
  private readonly root = el('tour');

  constructor() {
    el('tour-open').addEventListener('click', () => this.show(0));
    el('tour-next').addEventListener('click', () => (this.step + 1 < STEPS.length ? this.show(this.step + 1) : this.close()));
    el('tour-back').addEventListener('click', () => this.show(Math.max(0, this.step - 1)));
    el('tour-close').addEventListener('click', () => this.close());
    if (localStorage.getItem(STORAGE_KEY) !== 'done') this.show(0);
  }

  show(step: number): void {
    this.step = step;
    const [title, text] = STEPS[step];
    el('tour-body').replaceChildren(make('strong', '', `${step + 1}/${STEPS.length} · ${title}`), make('p', '', text));
    el<HTMLButtonElement>('tour-back').disabled = step === 0;
    el('tour-next').textContent = step + 1 < STEPS.length ? 'next' : 'done';
    this.root.hidden = false;
  }

  close(): void {
    this.root.hidden = true;
    localStorage.setItem(STORAGE_KEY, 'done');
  }
}
