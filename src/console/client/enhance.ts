/** What a freshly rendered part of a page needs from the script: local times, charts, selection. */
import { drawCharts } from './charts-loader.ts';
import { updateSelection } from './selection.ts';
import { localizeTimes } from './times.ts';

export function enhance(root: ParentNode) {
  localizeTimes(root);
  drawCharts(root);
  updateSelection();
}
