// Entry point of the dashboard (index.html). Without WebGPU the page says so and what to use instead.
import './style.css';
import { requestBrowserGpu, WebGpuUnavailableError } from '../engine/device';
import type { Gpu } from '../engine/gpu';
import { fileListFolder, filesFromDrop } from '../io';
import { App } from './app';
import { progress, showError } from './messages';
import { Tour } from './tour';
import { bundledConfigs, bundledModels, loadBundledConfig, loadFolder, loadBundledModel, type LoadedModel } from './models';
import { decodeUrlState } from './url-state';
import { bindMemoryInput } from './memory-setting';
import { memoryBudget } from '../io/memory';
import { findTraces, loadTrace } from './trace-open';

async function main(): Promise<void> {
  let gpu;
  try {
    gpu = await requestBrowserGpu('moescope');
  } catch (e) {
    const box = document.getElementById('nogpu')!;
    document.getElementById('nogpu-reason')!.textContent =
      e instanceof WebGpuUnavailableError ? e.message : `WebGPU could not start: ${(e as Error).message}`;
    box.hidden = false;
    return;
  }
  document.getElementById('app')!.hidden = false;
  bindMemoryInput(document.getElementById('memory-input') as HTMLInputElement, localStorage, memoryBudget(gpu.adapter.memoryHeaps), showError);

  const models = bundledModels();
  const configs = await bundledConfigs().catch(() => []);
  const select = document.getElementById('model-select') as HTMLSelectElement;
  const group = (label: string) => Object.assign(document.createElement('optgroup'), { label });
  const runnable = group('run in the browser');
  for (const m of models) runnable.append(new Option(m, `demo:${m}`));
  const skeletons = group('config only (too large to run)');
  for (const c of configs) skeletons.append(new Option(c.name, `config:${c.file}`));
  const other = group('your own');
  other.append(new Option('open a model folder…', 'open'), new Option('open model files or a routing trace…', 'open-files'));
  select.append(...[runnable, skeletons, other].filter((g) => g.children.length));

  // What was opened (its File objects), kept so picking it again loads it again (switching away destroys the loaded
  // model), and so a lost device can be recovered from.
  type Reopen = (gpu: Gpu, onProgress: (f: number, what: string) => void) => Promise<LoadedModel>;
  let dropped: { id: string; name: string; reopen: Reopen } | null = null;
  // Models load on the app's device at the time (a new one after a lost device).
  const app: App = new App(gpu, async (id, onProgress) => {
    if (id.startsWith('demo:')) return loadBundledModel(app.gpu, id.slice(5), onProgress);
    if (id.startsWith('config:')) return loadBundledConfig(id.slice(7));
    if (dropped && id === dropped.id) return Object.assign(await dropped.reopen(app.gpu, onProgress), { name: dropped.name });
    throw new Error(`unknown model "${id}": pick one from the list or open a folder`);
  });
  await app.init();
  new Tour();
  // The end-to-end tests' hook: development server only (import.meta.env.DEV is false in a production build, which
  // then drops this import and the module).
  if (import.meta.env.DEV) (await import('./test-hook')).installTestHook(app);

  const openFiles = async (files: File[], location: string) => {
    try {
      progress(0, `opening ${location}`);
      const traces = await findTraces(files);
      const reopen: Reopen = traces.length
        ? (g, p) => loadTrace(g, traces[0], files, p, traces[1])
        : (g, p) => loadFolder(g, fileListFolder(files, location), p);
      const model = await reopen(app.gpu, (f, what) => progress(f, what));
      if (!traces.length && location === 'picked files') model.name = `${model.config.family} model (picked files)`;
      dropped = { id: model.id, name: model.name, reopen };
      const id = model.id;
      if (![...select.options].some((o) => o.value === id)) other.prepend(new Option(model.name, id));
      await app.setModel(model);
    } catch (e) {
      showError(e);
    } finally {
      progress(null, '');
    }
  };
  // A folder (webkitdirectory) or the files of one (config.json, *.safetensors, tokenizer.json) picked together.
  for (const id of ['folder-input', 'files-input']) {
    const input = document.getElementById(id) as HTMLInputElement;
    input.addEventListener('change', () => {
      const files = [...(input.files ?? [])];
      input.value = '';
      if (files.length) void openFiles(files, files[0].webkitRelativePath.split('/')[0] || 'picked files');
    });
  }
  const overlay = document.getElementById('drop-overlay')!;
  // Accepting the drag on enter and over (with a copy effect) is what lets the browser deliver the drop here.
  for (const type of ['dragenter', 'dragover'] as const) {
    window.addEventListener(type, (ev) => {
      ev.preventDefault();
      if (ev.dataTransfer) ev.dataTransfer.dropEffect = 'copy';
      overlay.hidden = false;
    });
  }
  window.addEventListener('dragleave', (ev) => {
    if (ev.relatedTarget === null) overlay.hidden = true;
  });
  window.addEventListener('drop', (ev) => {
    ev.preventDefault();
    overlay.hidden = true;
    const items = ev.dataTransfer?.items;
    if (!items) return;
    // Entries are only readable during the event: name the folder and collect its files before any await.
    const top = items.length === 1 ? items[0].webkitGetAsEntry() : null;
    const location = top?.isDirectory ? top.name : 'dropped files';
    const pending = filesFromDrop(items as unknown as Parameters<typeof filesFromDrop>[0]);
    void pending.then((files) => openFiles(files, location), showError);
  });

  // Start on the URL's model, else the bundled demo model, else the first skeleton.
  const url = decodeUrlState(location.search);
  const demo = models.find((m) => !m.endsWith('-early')) ?? models[0];
  const first = url.model ?? (demo ? `demo:${demo}` : configs.length ? `config:${configs[0].file}` : null);
  if (!first) {
    showError(new Error('No bundled model or config found under public/.'));
    return;
  }
  try {
    progress(0, 'loading');
    const model = await (first.startsWith('demo:')
      ? loadBundledModel(app.gpu, first.slice(5), (f, what) => progress(f, what))
      : first.startsWith('config:')
        ? loadBundledConfig(first.slice(7))
        : Promise.reject(new Error(`the link names model "${first}", which has to be opened again`)));
    await app.setModel(model, url);
  } catch (e) {
    showError(e);
    if (first !== `config:${configs[0]?.file}` && configs.length) await app.open(`config:${configs[0].file}`);
  } finally {
    progress(null, '');
  }
}

void main();
