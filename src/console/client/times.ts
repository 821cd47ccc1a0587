/**
 * Instants in the viewer's time zone: the server renders <time datetime> in UTC; this rewrites the
 * text in the browser's zone (the tooltip names the zone), and "relative" ones as "5 min ago".
 */
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

const STEPS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['second', 60],
  ['minute', 60],
  ['hour', 24],
  ['day', 30],
  ['month', 12],
  ['year', Infinity],
];

/** "3 minutes ago", "in 2 hours": the largest unit that fits. */
export function relativeText(date: Date, now = Date.now()): string {
  let value = (date.getTime() - now) / 1000;
  for (const [unit, size] of STEPS) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return absolute.format(date);
}

export function localizeTimes(root: ParentNode = document) {
  for (const el of root.querySelectorAll<HTMLTimeElement>('time[datetime]')) {
    const date = new Date(el.dateTime);
    if (Number.isNaN(date.getTime())) continue;
    el.textContent = el.dataset.format === 'relative' ? relativeText(date) : absolute.format(date);
    el.title = full.format(date);
  }
}

export function keepRelativeTimesFresh() {
  window.setInterval(() => {
    for (const el of document.querySelectorAll<HTMLTimeElement>('time[data-format="relative"]')) {
      el.textContent = relativeText(new Date(el.dateTime));
    }
  }, 30_000);
}
