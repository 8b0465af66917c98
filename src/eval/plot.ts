/**
 * Quality-vs-size trade-off plots: one labelled point per KV-cache method,
 * x = bits per value, y = ΔPPL % or mean KLD on a log scale, and the Pareto
 * frontier drawn as a step line. Written as SVG (vega-lite → vega) and PNG
 * (resvg, 1200 px wide).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { renderVegaLite } from './render.js';

export interface PlotRow {
  readonly label: string;
  readonly bitsPerValue: number;
  /** Perplexity change versus the f32/f16 baseline, in percent. */
  readonly dPplPct: number;
  /** Mean KL divergence versus the baseline, in nats. */
  readonly kld: number;
}

export type PlotErrorKey = 'dPplPct' | 'kld';

export interface TradeoffPlotOptions {
  readonly title: string;
}

export { PNG_WIDTH } from './render.js';

/**
 * The Pareto frontier of `rows` for error column `key`: rows that no other row
 * dominates (another row with ≤ bits and ≤ error, at least one strictly less).
 * Rows with non-finite bits or error are ignored. Ties (identical bits and
 * error) dominate neither each other, so all of them stay on the frontier.
 * Sorted by bits ascending, then error ascending, then input order.
 */
export function paretoFrontier<R extends PlotRow>(rows: readonly R[], key: PlotErrorKey): R[] {
  const ok = rows
    .map((row, index) => ({ row, index }))
    .filter(({ row }) => Number.isFinite(row.bitsPerValue) && Number.isFinite(row[key]));
  const front = ok.filter(
    ({ row: a }) =>
      !ok.some(
        ({ row: b }) =>
          b.bitsPerValue <= a.bitsPerValue &&
          b[key] <= a[key] &&
          (b.bitsPerValue < a.bitsPerValue || b[key] < a[key]),
      ),
  );
  front.sort(
    (p, q) =>
      p.row.bitsPerValue - q.row.bitsPerValue || p.row[key] - q.row[key] || p.index - q.index,
  );
  return front.map(({ row }) => row);
}

interface MetricSpec {
  readonly key: PlotErrorKey;
  readonly file: string;
  readonly axisTitle: string;
  readonly subtitle: string;
  /** Default floor for values ≤ 0 (log scales cannot show them). */
  readonly floor: number;
  readonly unit: string;
  readonly format: (v: number) => string;
}

const METRICS: readonly MetricSpec[] = [
  {
    key: 'dPplPct',
    file: 'tradeoff-ppl',
    axisTitle: 'ΔPPL vs baseline (%, log scale)',
    subtitle: 'Perplexity increase vs bits per value',
    floor: 1e-4,
    unit: ' %',
    format: formatNumber,
  },
  {
    key: 'kld',
    file: 'tradeoff-kld',
    axisTitle: 'Mean KL divergence (nats, log scale)',
    subtitle: 'Mean KL divergence vs bits per value',
    floor: 1e-8,
    unit: '',
    format: formatNumber,
  },
];

/** Compact human number: 0.15, 2.5, 3e-5, 1e-6. */
function formatNumber(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(3)));
  const [m, e] = v.toExponential(2).split('e');
  return `${Number(m)}e${Number(e)}`;
}

function decadeLabel(v: number): string {
  const e = Math.round(Math.log10(v));
  return e >= -3 && e <= 4 ? String(Number(v.toPrecision(1))) : `1e${e}`;
}

interface Datum {
  label: string;
  bits: number;
  y: number;
  value: number;
  clamped: boolean;
  frontier: string;
  text: string;
  tooltip: string;
  /** Rank along the frontier (for the step line's order), −1 if not on it. */
  order: number;
  /** Label placement, chosen by placeLabels. */
  align: 'left' | 'right' | 'center';
  baseline: 'middle' | 'top' | 'bottom';
  dx: number;
  dy: number;
}

const PLOT_WIDTH = 760;
const PLOT_HEIGHT = 460;
const LABEL_FONT_SIZE = 13;
const POINT_SIZE = 90;

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

function overlapArea(a: Box, b: Box): number {
  const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
  const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Rough width of a bold DejaVu Sans label in pixels (vega has no text metrics headless either). */
function labelWidth(text: string): number {
  return text.length * LABEL_FONT_SIZE * 0.68 + 2;
}

/**
 * Greedy label placement in pixel space: for each point, try positions around
 * it (right first) and keep the one that stays inside the plot and overlaps
 * other labels, points and the frontier line the least. Frontier points are
 * placed first and always labelled; a dominated point whose best spot still
 * covers another label loses its label (the table and the SVG tooltip name it).
 */
function placeLabels(data: Datum[], px: (d: Datum) => [number, number], lines: Box[]): void {
  const r = Math.sqrt(POINT_SIZE / Math.PI) + 4;
  const h = LABEL_FONT_SIZE + 2;
  const pts = data.map(px);
  const pointBoxes: Box[] = pts.map(([x, y]) => ({ x0: x - r + 3, y0: y - r + 3, x1: x + r - 3, y1: y + r - 3 }));
  const placed: Box[] = [];
  type Cand = Pick<Datum, 'align' | 'baseline' | 'dx' | 'dy'>;
  const cands: Cand[] = [
    { align: 'left', baseline: 'middle', dx: r, dy: 0 },
    { align: 'right', baseline: 'middle', dx: -r, dy: 0 },
    { align: 'left', baseline: 'bottom', dx: r - 4, dy: -(r - 4) },
    { align: 'left', baseline: 'top', dx: r - 4, dy: r - 4 },
    { align: 'center', baseline: 'bottom', dx: 0, dy: -r },
    { align: 'center', baseline: 'top', dx: 0, dy: r },
    { align: 'right', baseline: 'bottom', dx: -(r - 4), dy: -(r - 4) },
    { align: 'right', baseline: 'top', dx: -(r - 4), dy: r - 4 },
  ];
  // Place crowded points first so they get their best spot.
  const order = data.map((_, i) => i);
  const crowd = (i: number) =>
    pts.reduce((n, [x, y]) => n + (Math.hypot(x - pts[i][0], y - pts[i][1]) < 80 ? 1 : 0), 0);
  const onFront = (i: number) => (data[i].frontier === FRONTIER ? 0 : 1);
  order.sort((a, b) => onFront(a) - onFront(b) || crowd(b) - crowd(a) || a - b);
  for (const i of order) {
    const [x, y] = pts[i];
    const w = labelWidth(data[i].text);
    let best: { c: Cand; box: Box; cost: number } | undefined;
    cands.forEach((c, rank) => {
      const ax = x + c.dx;
      const ay = y + c.dy;
      const x0 = c.align === 'left' ? ax : c.align === 'right' ? ax - w : ax - w / 2;
      const y0 = c.baseline === 'top' ? ay : c.baseline === 'bottom' ? ay - h : ay - h / 2;
      const box = { x0, y0, x1: x0 + w, y1: y0 + h };
      let cost = rank * 2;
      const outside =
        Math.max(0, -box.x0) + Math.max(0, box.x1 - PLOT_WIDTH) + Math.max(0, -box.y0) + Math.max(0, box.y1 - PLOT_HEIGHT);
      cost += outside * h * 50;
      for (const b of placed) cost += overlapArea(box, b) * 40;
      pointBoxes.forEach((b, j) => {
        if (j !== i) cost += overlapArea(box, b) * 30;
      });
      for (const b of lines) cost += overlapArea(box, b) * 4;
      if (!best || cost < best.cost) best = { c, box, cost };
    });
    if (!best) continue;
    const covered = placed.reduce((sum, b) => sum + overlapArea(best!.box, b), 0);
    if (onFront(i) === 1 && covered > 0.1 * w * h) {
      data[i].text = '';
      continue;
    }
    Object.assign(data[i], best.c);
    placed.push(best.box);
  }
}

const FRONTIER = 'Pareto frontier';
const DOMINATED = 'dominated';

function buildSpec(rows: readonly PlotRow[], m: MetricSpec, title: string): Record<string, unknown> {
  const usable = rows.filter((r) => Number.isFinite(r.bitsPerValue) && Number.isFinite(r[m.key]));
  const positive = usable.map((r) => r[m.key]).filter((v) => v > 0);
  const minPos = positive.length > 0 ? Math.min(...positive) : m.floor;
  const maxPos = positive.length > 0 ? Math.max(...positive) : m.floor;
  // Keep the floor below every real (positive) value so clamped points sit at the bottom.
  const floor = Math.min(m.floor, 10 ** (Math.floor(Math.log10(minPos)) - 1));
  const front = paretoFrontier(usable, m.key);
  const floorText = `≤ ${m.format(floor)}${m.unit}`;

  const data: Datum[] = usable.map((r) => {
    const value = r[m.key];
    const clamped = !(value > floor);
    const shown = clamped ? floorText : `${m.format(value)}${m.unit}`;
    const order = front.indexOf(r);
    return {
      label: r.label,
      bits: r.bitsPerValue,
      y: clamped ? floor : value,
      value,
      clamped,
      frontier: order >= 0 ? FRONTIER : DOMINATED,
      text: clamped ? `${r.label} (${floorText})` : r.label,
      tooltip: `${r.label}: ${formatNumber(r.bitsPerValue)} bits/value, ${shown}${clamped ? ` (actual ${m.format(value)}${m.unit})` : ''}`,
      order,
      align: 'left',
      baseline: 'middle',
      dx: 0,
      dy: 0,
    };
  });

  // Y domain: whole decades around the data (and the floor if used), with explicit decade ticks.
  const anyClamped = data.some((d) => d.clamped);
  const lowest = anyClamped ? floor : minPos;
  const loExp = Math.floor(Math.log10(lowest) + 1e-9);
  const hiExp = Math.max(Math.ceil(Math.log10(maxPos) - 1e-9), loExp + 1);
  // Pad by a factor of 2 (0.3 decade) beyond the data so no point sits on the frame,
  // while the domain still spans at least one whole decade of ticks.
  const yDomain = [Math.min(10 ** loExp, lowest / 2), Math.max(10 ** hiExp, maxPos * 2)];
  const decades: number[] = [];
  for (let e = loExp; e <= hiExp; e++) decades.push(10 ** e);
  // Thin to every other decade when there are many; the lowest (possibly "≤ floor") tick stays.
  const yAxisValues = decades.length > 8 ? decades.filter((_, k) => k % 2 === 0) : decades;
  const tickText = Object.fromEntries(
    decades.map((v) => [String(v), (anyClamped && v === floor ? '≤ ' : '') + decadeLabel(v)]),
  );
  const yLabelExpr = `${JSON.stringify(tickText)}[datum.value + ''] || format(datum.value, '~g')`;

  const bits = data.map((d) => d.bits);
  const bMin = bits.length > 0 ? Math.min(...bits) : 0;
  const bMax = bits.length > 0 ? Math.max(...bits) : 16;
  const span = Math.max(bMax - bMin, 1);
  const xDomain = [Math.max(0, Math.floor(bMin - span * 0.08)), Math.ceil(bMax + span * 0.08)];

  const px = (d: Datum): [number, number] => [
    ((d.bits - xDomain[0]) / (xDomain[1] - xDomain[0])) * PLOT_WIDTH,
    PLOT_HEIGHT * (1 - (Math.log10(d.y / yDomain[0]) / Math.log10(yDomain[1] / yDomain[0]))),
  ];
  const frontPts = data.filter((d) => d.order >= 0).sort((a, b) => a.order - b.order).map(px);
  const lineBoxes: Box[] = [];
  for (let i = 1; i < frontPts.length; i++) {
    const [x0, y0] = frontPts[i - 1];
    const [x1, y1] = frontPts[i];
    lineBoxes.push({ x0, y0: y0 - 1.5, x1, y1: y0 + 1.5 }); // horizontal run (step-after)
    lineBoxes.push({ x0: x1 - 1.5, y0: Math.min(y0, y1), x1: x1 + 1.5, y1: Math.max(y0, y1) }); // drop
  }
  placeLabels(data, px, lineBoxes);

  const x = {
    field: 'bits',
    type: 'quantitative',
    title: 'Bits per cached value (K and V)',
    scale: { domain: xDomain, nice: false, zero: false },
    axis: { tickMinStep: 1, grid: true },
  };
  const y = {
    field: 'y',
    type: 'quantitative',
    title: m.axisTitle,
    scale: { type: 'log', domain: yDomain, nice: false },
    axis: { values: yAxisValues, labelExpr: yLabelExpr, grid: true },
  };
  const color = {
    field: 'frontier',
    type: 'nominal',
    title: null,
    scale: {
      domain: [FRONTIER, DOMINATED].filter((k) => data.some((d) => d.frontier === k)),
      range: ['#1f5fa8', '#9a9a9a'].filter((_, i) => data.some((d) => d.frontier === [FRONTIER, DOMINATED][i])),
    },
    legend: { orient: 'top-right', fillColor: 'white', strokeColor: '#cccccc', padding: 8 },
  };
  const tooltip = { field: 'tooltip', type: 'nominal' };

  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: m.subtitle, anchor: 'start', fontSize: 18, subtitleFontSize: 13 },
    width: PLOT_WIDTH,
    height: PLOT_HEIGHT,
    background: 'white',
    padding: 16,
    config: {
      font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
      view: { stroke: '#bbbbbb' },
      axis: { labelFontSize: 12, titleFontSize: 13, gridColor: '#ececec' },
      legend: { labelFontSize: 12, symbolSize: 90 },
    },
    data: { values: data },
    layer: [
      {
        transform: [{ filter: 'datum.order >= 0' }],
        mark: { type: 'line', interpolate: 'step-after', color: '#1f5fa8', strokeWidth: 2, opacity: 0.7 },
        encoding: { x, y, order: { field: 'order', type: 'quantitative' } },
      },
      {
        mark: { type: 'point', filled: true, size: POINT_SIZE, opacity: 1 },
        encoding: {
          x,
          y,
          color,
          shape: {
            field: 'clamped',
            type: 'nominal',
            scale: { domain: [false, true], range: ['circle', 'triangle-down'] },
            legend: null,
          },
          tooltip,
        },
      },
      {
        mark: {
          type: 'text',
          fontSize: LABEL_FONT_SIZE,
          fontWeight: 'bold',
          align: { expr: 'datum.align' },
          baseline: { expr: 'datum.baseline' },
          dx: { expr: 'datum.dx' },
          dy: { expr: 'datum.dy' },
        },
        encoding: {
          x,
          y,
          text: { field: 'text', type: 'nominal' },
          color,
          tooltip,
        },
      },
    ],
  };
}

/**
 * Writes tradeoff-ppl.{svg,png} and tradeoff-kld.{svg,png} into `outDir`
 * (created if missing) and returns the four paths. Values ≤ 0 (e.g. a ΔPPL
 * inside the noise) are drawn at a floor below the smallest positive value,
 * as a down-pointing triangle labelled "≤ floor".
 */
export async function writeTradeoffPlots(
  rows: PlotRow[],
  outDir: string,
  opts: TradeoffPlotOptions,
): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const written: string[] = [];
  for (const m of METRICS) written.push(...(await renderVegaLite(buildSpec(rows, m, opts.title), join(outDir, m.file))));
  return written;
}
