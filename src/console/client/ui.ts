/** Small pieces of page behaviour: the status toast, the modal dialog, focus. */

let toastTimer: number | undefined;

/** Says something in the polite live region at the bottom of the page. */
export function toast(message: string, tone: 'ok' | 'error' = 'ok') {
  const el = document.querySelector<HTMLElement>('[data-toast]');
  if (!el) return;
  el.textContent = message;
  el.dataset.tone = tone;
  el.classList.add('shown');
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => el.classList.remove('shown'), tone === 'error' ? 9000 : 4000);
}

function dialogParts() {
  const dialog = document.querySelector<HTMLDialogElement>('[data-dialog]')!;
  return {
    dialog,
    title: dialog.querySelector<HTMLElement>('[data-dialog-title]')!,
    body: dialog.querySelector<HTMLElement>('[data-dialog-body]')!,
    ok: dialog.querySelector<HTMLButtonElement>('[data-dialog-ok]')!,
    cancel: dialog.querySelector<HTMLButtonElement>('[data-dialog-cancel]')!,
  };
}

/** Asks a yes/no question in the modal dialog; resolves true for OK. */
export function confirmDialog(question: string, okLabel = 'OK'): Promise<boolean> {
  const d = dialogParts();
  d.title.textContent = 'Please confirm';
  d.body.replaceChildren(Object.assign(document.createElement('p'), { textContent: question }));
  d.ok.textContent = okLabel;
  d.cancel.hidden = false;
  d.dialog.returnValue = '';
  d.dialog.showModal();
  d.ok.focus();
  return new Promise((resolve) => d.dialog.addEventListener('close', () => resolve(d.dialog.returnValue === 'ok'), { once: true }));
}

/** Shows content once in the dialog with only a Close button. */
export function infoDialog(title: string, content: Node[]): Promise<void> {
  const d = dialogParts();
  d.title.textContent = title;
  d.body.replaceChildren(...content);
  d.ok.textContent = 'Close';
  d.cancel.hidden = true;
  d.dialog.showModal();
  return new Promise((resolve) => d.dialog.addEventListener('close', () => resolve(), { once: true }));
}

export const isDialogOpen = () => document.querySelector<HTMLDialogElement>('[data-dialog]')?.open === true;

/** Copies text to the clipboard; where the browser refuses (plain http), selects it for Ctrl+C. */
export async function copyText(text: string, fallback: HTMLInputElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    fallback?.focus();
    fallback?.select();
    return false;
  }
}
