/**
 * A horizontal bar chart of the Berth/Distribution ratios as a standalone SVG (no plotting dependency).
 * Log-scale x axis; each bar grows from the 1x line to the row's ratio; green when the row's target is met, red
 * when not, grey without a target; a black tick marks a ratio target.
 */
import { formatRowRatio, ratioTargets, type RowResult } from './results.ts';

const ROW_HEIGHT = 22;
const PLOT_WIDTH = 400;
const VALUE_WIDTH = 70;
const TOP = 58;
const BOTTOM = 40;
const COLORS = { met: '#2e7d32', 'not met': '#c62828', 'no target': '#9e9e9e', 'not measured': '#9e9e9e' };

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function tickLabel(v: number): string {
  return `${v >= 1 ? String(v) : v.toString()}x`;
}

export function ratioChart(rows: readonly RowResult[], title: string): string {
  const plotted = rows.filter((r) => Number.isFinite(r.ratio) && r.ratio > 0);
  const values = plotted.flatMap((r) => [r.ratio, ...ratioTargets(r.target)]);
  const lo = 10 ** Math.floor(Math.log10(Math.min(0.5, ...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(2, ...values)));
  const labels = plotted.map(
    (r) => `${r.label} (${r.unit}${r.better === 'lower' ? ', lower is better' : ''})`,
  );
  // About 6.2 px per character at 12 px Helvetica; the label column grows with the longest label.
  const LABEL_WIDTH = Math.ceil(Math.max(200, ...labels.map((l) => l.length * 6.2)) + 16);
  const x0 = LABEL_WIDTH;
  const x = (v: number): number =>
    x0 + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PLOT_WIDTH;
  const width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH + 10;
  const height = TOP + plotted.length * ROW_HEIGHT + BOTTOM;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="10" y="38" fill="#555">Berth median / Distribution median, log scale. Green: target met; red: not met; grey: no target. Black tick: ratio target.</text>`,
  );
  // Grid and ticks.
  const ticks: number[] = [];
  for (let decade = lo; decade <= hi * 1.0001; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const v = decade * m;
      if (v >= lo * 0.9999 && v <= hi * 1.0001) ticks.push(Number(v.toPrecision(3)));
    }
  }
  const plotBottom = TOP + plotted.length * ROW_HEIGHT;
  const decades = Math.round(Math.log10(hi / lo));
  for (const t of ticks) {
    const tx = x(t).toFixed(1);
    const labelled = decades <= 2 || !String(t).replace(/0|\./g, '').startsWith('2');
    out.push(
      `<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${plotBottom}" stroke="${t === 1 ? '#000' : '#e0e0e0'}" stroke-width="${t === 1 ? 1.5 : 1}"/>`,
    );
    if (labelled)
      out.push(
        `<text x="${tx}" y="${plotBottom + 16}" text-anchor="middle" fill="#333">${tickLabel(t)}</text>`,
      );
  }
  plotted.forEach((r, i) => {
    const y = TOP + i * ROW_HEIGHT;
    const label = labels[i] as string;
    const a = x(Math.min(1, r.ratio));
    const b = x(Math.max(1, r.ratio));
    out.push(
      `<text x="${LABEL_WIDTH - 8}" y="${y + 15}" text-anchor="end">${escapeXml(label)}</text>`,
      `<rect x="${a.toFixed(1)}" y="${y + 4}" width="${Math.max(1, b - a).toFixed(1)}" height="${ROW_HEIGHT - 8}" fill="${COLORS[r.status]}"><title>${escapeXml(`${r.label}: ${r.ratio.toFixed(2)}x (${r.status}${r.targetText ? `, target ${r.targetText}` : ''})`)}</title></rect>`,
      `<text x="${LABEL_WIDTH + PLOT_WIDTH + 8}" y="${y + 15}">${formatRowRatio(r)}</text>`,
    );
    for (const t of ratioTargets(r.target)) {
      const tx = x(t).toFixed(1);
      out.push(
        `<line x1="${tx}" y1="${y + 1}" x2="${tx}" y2="${y + ROW_HEIGHT - 1}" stroke="#000" stroke-width="2.5"/>`,
      );
    }
  });
  out.push(
    `<text x="${x(1).toFixed(1)}" y="${plotBottom + 32}" text-anchor="middle" fill="#555">Berth / Distribution</text>`,
    '</svg>',
    '',
  );
  return out.join('\n');
}
