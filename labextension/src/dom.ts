/**
 * The few DOM pieces the panels and the cell diffs build alike.
 */

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

/** A yes / no pair of buttons in their bar (a proposed task's Approve / Cancel, an edit's Accept / Reject). */
export function decisionBar(yes: [string, string], no: [string, string]): [HTMLDivElement, HTMLButtonElement, HTMLButtonElement] {
  const bar = el('div', 'direng-proposed-actions');
  const make = ([label, cls]: [string, string], kind: string) => {
    const b = el('button', `jp-Button ${kind} jp-mod-styled direng-button ${cls}`, label);
    b.type = 'button';
    return b;
  };
  const ok = make(yes, 'jp-mod-accept');
  const cancel = make(no, 'jp-mod-reject');
  bar.append(ok, cancel);
  return [bar, ok, cancel];
}
