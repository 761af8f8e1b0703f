// The debug overlay (off by default): every observed element outlined with its state, so a
// producer sees what counts. The states come from the core (what became of each tracked
// exposure, and the rule of a refused input); the overlay only paints them.

/** An observed element's state as the overlay shows it. */
export type State = 'tracking' | 'logged' | 'deduped' | 'sampled_out' | 'refused';

const ATTR = 'data-sightline';
const RULE_ATTR = 'data-sightline-rule';
const STYLE_ID = 'sightline-overlay';

const CSS = `
[${ATTR}]{outline:3px dashed #888;outline-offset:-3px;position:relative}
[${ATTR}="logged"]{outline:3px solid #1a8a34}
[${ATTR}="deduped"]{outline:3px solid #d08800}
[${ATTR}="sampled_out"]{outline:3px dotted #4a6ee0}
[${ATTR}="refused"]{outline:3px solid #d0182f}
[${ATTR}]::after{content:attr(${ATTR}) " " attr(${RULE_ATTR});position:absolute;left:2px;top:2px;
font:11px/1.3 monospace;background:rgba(0,0,0,.75);color:#fff;padding:1px 4px;pointer-events:none;z-index:2147483647}
`;

export class Overlay {
  constructor(private root: Document = document) {
    if (root.getElementById(STYLE_ID) === null) {
      const style = root.createElement('style');
      style.id = STYLE_ID;
      style.textContent = CSS;
      root.head.appendChild(style);
    }
  }

  show(element: Element, state: State, rule: string | null = null): void {
    element.setAttribute(ATTR, state);
    if (rule === null) element.removeAttribute(RULE_ATTR);
    else element.setAttribute(RULE_ATTR, rule);
  }

  clear(element: Element): void {
    element.removeAttribute(ATTR);
    element.removeAttribute(RULE_ATTR);
  }

  remove(): void {
    this.root.getElementById(STYLE_ID)?.remove();
    for (const element of this.root.querySelectorAll(`[${ATTR}]`)) this.clear(element);
  }
}
