/**
 * The console's charts, drawn with uPlot from the data the server put in `data-series`:
 * - hourly: [[unix seconds, count], ...] as bars over time (the viewer's time zone);
 * - buckets: [[label, count], ...] as bars over categories;
 * - accuracy: {threshold, names, values} as bars of percent with the threshold as a line.
 */
import uPlot from 'uplot';

const BAR = '#2563eb';
const BAR_FILL = 'rgba(37, 99, 235, 0.55)';
const THRESHOLD = '#b91c1c';
const AXIS = { stroke: '#374151', grid: { stroke: '#e5e7eb', width: 1 }, ticks: { stroke: '#d1d5db', width: 1 } };

const charts = new WeakMap<HTMLElement, uPlot>();

/** Counts are whole: ticks at 1, 2, 5, 10, … and the axis from 0 to at least 1. */
const COUNT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000];
const COUNT_AXIS = { ...AXIS, size: 48, incrs: COUNT_INCRS };
const countRange = (_u: uPlot, _min: number, max: number): uPlot.Range.MinMax => [0, Math.max(1, Math.ceil(max * 1.1))];

function bars() {
  return uPlot.paths.bars!({ size: [0.7, 48], gap: 2 });
}

/** The room a label takes along its line: at most about 7 px per character of the 12 px axis font. */
const labelLength = (labels: string[]) => 7 * Math.max(0, ...labels.map((l) => l.length));
/** Labels that would overlap side by side under bars `width` px wide are turned to read upwards. */
const upright = (labels: string[], width: number) => labelLength(labels) + 12 > (width - COUNT_AXIS.size) / Math.max(1, labels.length);
/** The room turned labels need below the plot. */
const uprightSize = (labels: string[]) => 14 + labelLength(labels);

function categorical(labels: string[], width: number): Partial<uPlot.Options> {
  const turned = upright(labels, width);
  return {
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
    axes: [
      {
        ...AXIS,
        splits: () => labels.map((_, i) => i),
        values: (_u, splits) => splits.map((i) => labels[i] ?? ''),
        gap: 4,
        ...(turned ? { rotate: 90, size: uprightSize(labels) } : {}),
      },
      COUNT_AXIS,
    ],
  };
}

function options(kind: string, raw: unknown, width: number): { opts: uPlot.Options; data: uPlot.AlignedData } | null {
  const base = { width, height: 220, legend: { show: true }, cursor: { drag: { x: false, y: false } } };
  if (kind === 'hourly') {
    const rows = raw as [number, number][];
    return {
      opts: {
        ...base,
        scales: { x: { time: true }, y: { range: countRange } },
        series: [{ label: 'Hour' }, { label: 'Annotations', stroke: BAR, fill: BAR_FILL, paths: bars(), points: { show: false } }],
        axes: [AXIS, COUNT_AXIS],
      },
      data: [rows.map((r) => r[0]), rows.map((r) => r[1])],
    };
  }
  if (kind === 'buckets') {
    const rows = raw as [string, number][];
    const labels = rows.map((r) => r[0]);
    return {
      opts: {
        ...base,
        ...categorical(labels, width),
        scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: countRange } },
        series: [{ label: 'Time', value: (_u, v) => labels[v] ?? '' }, { label: 'Annotations', stroke: BAR, fill: BAR_FILL, paths: bars(), points: { show: false } }],
      },
      data: [labels.map((_, i) => i), rows.map((r) => r[1])],
    };
  }
  if (kind === 'accuracy') {
    const { threshold, names, values } = raw as { threshold: number; names: string[]; values: number[] };
    // Names as long as fit a bar's axis label; the full name is in the legend on hover.
    const short = names.map((n) => (n.length > 24 ? `${n.slice(0, 23)}…` : n));
    return {
      opts: {
        ...base,
        // The plot keeps its height when the names below it are turned.
        height: 260 + (upright(short, width) ? uprightSize(short) : 0),
        ...categorical(short, width),
        scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: { range: [0, 100] } },
        series: [
          { label: 'Annotator', value: (_u, v) => names[v] ?? '' },
          { label: 'Accuracy %', stroke: BAR, fill: BAR_FILL, paths: bars(), points: { show: false }, value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)}%`) },
          { label: 'Threshold %', stroke: THRESHOLD, width: 2, dash: [6, 4], points: { show: false } },
        ],
      },
      data: [names.map((_, i) => i), values.map((v) => v * 100), names.map(() => threshold * 100)],
    };
  }
  return null;
}

export function drawChart(el: HTMLElement) {
  charts.get(el)?.destroy();
  el.replaceChildren();
  const width = Math.max(240, el.clientWidth || 600);
  const built = options(el.dataset.chart ?? '', JSON.parse(el.dataset.series ?? 'null'), width);
  if (!built) return;
  const chart = new uPlot(built.opts, built.data, el);
  charts.set(el, chart);
  new ResizeObserver(() => {
    const w = Math.max(240, el.clientWidth);
    if (Math.abs(w - chart.width) > 8) chart.setSize({ width: w, height: chart.height });
  }).observe(el);
}
