/** A hand-written SVG chart of latency percentiles against offered load (log–log), no dependency. */

export interface LatencyPoint {
  rate: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** false when the DIP did not keep up at this load (drawn hollow). */
  sustained: boolean;
}

export interface PlotOptions {
  title: string;
  subtitle: string;
  targets: Array<{ ms: number; label: string }>;
  rateTargets?: Array<{ rate: number; label: string }>;
}

const W = 820;
const H = 500;
const M = { left: 70, right: 170, top: 60, bottom: 60 };
const SERIES = [
  { key: 'p50', colour: '#1b9e77', label: 'p50' },
  { key: 'p90', colour: '#d95f02', label: 'p90' },
  { key: 'p99', colour: '#7570b3', label: 'p99' },
  { key: 'max', colour: '#999999', label: 'max' },
] as const;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out;
}

export function latencySvg(points: LatencyPoint[], o: PlotOptions): string {
  const pts = [...points].filter((p) => Number.isFinite(p.p50)).sort((a, b) => a.rate - b.rate);
  const finite = (v: number) => (Number.isFinite(v) && v > 0 ? v : Number.NaN);
  const ys = pts.flatMap((p) => [p.p50, p.p90, p.p99, p.max].map(finite)).filter((v) => !Number.isNaN(v));
  const yLo = Math.max(0.1, Math.min(...ys, ...o.targets.map((t) => t.ms)) / 1.5);
  const yHi = Math.max(...ys, ...o.targets.map((t) => t.ms)) * 1.5;
  const rates = [...pts.map((p) => p.rate), ...(o.rateTargets ?? []).map((t) => t.rate)];
  const xLo = Math.min(...rates) / 1.3;
  const xHi = Math.max(...rates) * 1.3;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number) => M.left + ((Math.log10(v) - Math.log10(xLo)) / (Math.log10(xHi) - Math.log10(xLo))) * pw;
  const y = (v: number) => M.top + ph - ((Math.log10(Math.min(Math.max(v, yLo), yHi)) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.left}" y="24" font-size="16" font-weight="bold">${esc(o.title)}</text>`);
  out.push(`<text x="${M.left}" y="42" fill="#555">${esc(o.subtitle)}</text>`);
  // Grid and axes.
  for (const t of logTicks(yLo, yHi)) {
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${M.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t >= 1000 ? `${t / 1000} s` : `${t} ms`}</text>`);
  }
  for (const t of logTicks(xLo, xHi)) {
    out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${M.top}" y2="${M.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x(t).toFixed(1)}" y="${M.top + ph + 16}" text-anchor="middle">${t >= 1000 ? `${t / 1000}k` : t}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle">offered load, IF-021 messages/s (log scale; each message to 4 recipients)</text>`);
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">in-to-delivered latency (log scale)</text>`);
  // Targets.
  for (const t of o.targets) {
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(t.ms).toFixed(1)}" y2="${y(t.ms).toFixed(1)}" stroke="#c00" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${M.left + pw - 4}" y="${(y(t.ms) - 4).toFixed(1)}" text-anchor="end" fill="#c00">${esc(t.label)}</text>`);
  }
  for (const t of o.rateTargets ?? []) {
    out.push(`<line x1="${x(t.rate).toFixed(1)}" x2="${x(t.rate).toFixed(1)}" y1="${M.top}" y2="${M.top + ph}" stroke="#c00" stroke-dasharray="2 4"/>`);
    out.push(`<text x="${(x(t.rate) - 4).toFixed(1)}" y="${M.top + 14}" text-anchor="end" fill="#c00">${esc(t.label)}</text>`);
  }
  // Series.
  for (const s of SERIES) {
    const coords = pts.map((p) => ({ p, v: p[s.key] })).filter(({ v }) => Number.isFinite(v) && v > 0);
    if (coords.length === 0) continue;
    const d = coords.map(({ p, v }, i) => `${i === 0 ? 'M' : 'L'}${x(p.rate).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="${s.key === 'max' ? 1 : 2}"${s.key === 'max' ? ' stroke-dasharray="3 3"' : ''}/>`);
    for (const { p, v } of coords) {
      out.push(`<circle cx="${x(p.rate).toFixed(1)}" cy="${y(v).toFixed(1)}" r="4" fill="${p.sustained ? s.colour : 'white'}" stroke="${s.colour}" stroke-width="2"><title>${s.label} at ${p.rate} msg/s: ${v.toFixed(1)} ms</title></circle>`);
    }
  }
  // Legend.
  const lx = M.left + pw + 16;
  SERIES.forEach((s, i) => {
    const ly = M.top + 10 + i * 20;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${s.colour}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${s.label}</text>`);
  });
  const ly = M.top + 10 + SERIES.length * 20 + 10;
  out.push(`<circle cx="${lx + 12}" cy="${ly}" r="4" fill="#333"/><text x="${lx + 30}" y="${ly + 4}">kept up</text>`);
  out.push(`<circle cx="${lx + 12}" cy="${ly + 20}" r="4" fill="white" stroke="#333" stroke-width="2"/><text x="${lx + 30}" y="${ly + 24}">fell behind</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
