/**
 * Charts are drawn by uPlot, loaded only on pages that have one (a separate chunk: pages without a
 * chart ship no chart library).
 */
export function drawCharts(root: ParentNode) {
  const targets = [...root.querySelectorAll<HTMLElement>('[data-chart]')];
  if (root instanceof HTMLElement && root.matches('[data-chart]')) targets.push(root);
  if (!targets.length) return;
  void import('./charts.ts').then((m) => {
    for (const el of targets) m.drawChart(el);
  });
}
