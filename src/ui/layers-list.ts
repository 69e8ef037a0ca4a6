// Layer toggles: a row per layer with show/hide and solo. Dense layers are marked (collapsing them is a view param).
export interface LayerListState {
  hidden: ReadonlySet<number>;
  solo: number;
}

export class LayersList {
  private rows: { show: HTMLInputElement; solo: HTMLInputElement; row: HTMLElement }[] = [];

  constructor(
    private readonly root: HTMLElement,
    private readonly onToggle: (layer: number, shown: boolean) => void,
    private readonly onSolo: (layer: number) => void,
  ) {}

  setModel(moeLayers: readonly boolean[]): void {
    this.rows = moeLayers.map((moe, l) => {
      const row = document.createElement('label');
      row.className = 'layer-row';
      const show = document.createElement('input');
      show.type = 'checkbox';
      show.checked = true;
      show.dataset.layer = String(l);
      show.setAttribute('aria-label', `show layer ${l}`);
      show.addEventListener('change', () => this.onToggle(l, show.checked));
      const name = document.createElement('span');
      name.textContent = `L${l}${moe ? '' : ' dense'}`;
      const solo = document.createElement('input');
      solo.type = 'checkbox';
      solo.className = 'solo';
      solo.title = 'solo';
      solo.setAttribute('aria-label', `solo layer ${l}`);
      solo.addEventListener('change', () => this.onSolo(solo.checked ? l : -1));
      const soloLabel = document.createElement('span');
      soloLabel.className = 'solo-label';
      soloLabel.textContent = 'solo';
      row.append(show, name, solo, soloLabel);
      return { show, solo, row };
    });
    this.root.replaceChildren(...this.rows.map((r) => r.row));
  }

  update(s: LayerListState): void {
    this.rows.forEach((r, l) => {
      r.show.checked = !s.hidden.has(l);
      r.solo.checked = s.solo === l;
      r.row.classList.toggle('dim', s.solo >= 0 ? s.solo !== l : s.hidden.has(l));
    });
  }
}
