// Command-line values shared by the CLI's commands.

const UNITS: Record<string, number> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };

/** "40GB", "40 GiB", "512MB", "1e9" → bytes; throws naming the flag on anything else. */
export function parseBytes(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  const unit = m ? (m[2] ?? '').toUpperCase() : '';
  if (!m || !(unit in UNITS)) throw new Error(`${flag}: "${text}" is not a size (examples: 40GB, 512MiB, 2e9)`);
  const bytes = Number(m[1]) * UNITS[unit];
  if (!(bytes > 0) || !Number.isFinite(bytes)) throw new Error(`${flag}: "${text}" must be a positive size`);
  return Math.round(bytes);
}
