// A confirmation dialog (a real modal <dialog>): resolves true when confirmed.

import { h } from './dom.js';

export function confirmAction({ title, body = [], confirm = 'Confirm', danger = false }) {
  return new Promise(resolve => {
    const dialog = h('dialog.confirm', { 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('div.dialog-body', body),
      h('div.actions',
        h('button.secondary', { type: 'button', 'data-action': 'cancel', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h(`button${danger ? '.danger' : '.primary'}`, {
          type: 'button', 'data-action': 'confirm', onclick: () => dialog.close('confirm'),
        }, confirm)));
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue === 'confirm');
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}
