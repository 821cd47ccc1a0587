/** Row selection in tables with `data-selectable`, and the bulk bar that acts on it. */

export function selectedIds(): number[] {
  return [...document.querySelectorAll<HTMLInputElement>('input[data-select-id]:checked')].map((i) => Number(i.dataset.selectId));
}

/** Enables the bulk buttons and counts the selection; keeps "select all" in step with the rows. */
export function updateSelection() {
  const ids = selectedIds();
  const count = document.querySelector('[data-selected-count]');
  if (count) count.textContent = `${ids.length} selected`;
  for (const b of document.querySelectorAll<HTMLButtonElement>('[data-bulk]')) b.disabled = ids.length === 0;
  const all = document.querySelector<HTMLInputElement>('[data-select-all]');
  if (all) {
    const boxes = document.querySelectorAll<HTMLInputElement>('input[data-select-id]');
    all.checked = boxes.length > 0 && ids.length === boxes.length;
    all.indeterminate = ids.length > 0 && ids.length < boxes.length;
  }
}

export function initSelection() {
  document.addEventListener('change', (event) => {
    const el = event.target;
    if (!(el instanceof HTMLInputElement)) return;
    if (el.hasAttribute('data-select-all')) {
      for (const box of document.querySelectorAll<HTMLInputElement>('input[data-select-id]')) box.checked = el.checked;
    }
    if (el.hasAttribute('data-select-all') || el.hasAttribute('data-select-id')) updateSelection();
  });
}
