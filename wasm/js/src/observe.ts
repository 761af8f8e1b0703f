// Visibility measured by the SDK, not the app: an IntersectionObserver reports each
// observed element's visible share to the core (which owns the threshold, the minimum time
// and the pauses), focus moves on tiles feed the core's focus rules (TV remotes, keyboard),
// and a MutationObserver stops tracking elements removed from the document.

/** Where an observed element sits: its page view and its place on the page. */
export interface Placement {
  /** The page view's id (`PageView.id`). */
  pageView: number;
  itemId: string;
  artworkId?: string | null;
  row: number;
  column: number;
}

/** What the observer tells the runtime. */
export interface Sink {
  visibility(element: Element, placement: Placement, fraction: number): void;
  focus(element: Element, placement: Placement, focused: boolean): void;
  /** The element left the document, or was unobserved: tracking ended. */
  removed(element: Element, placement: Placement): void;
}

/** IntersectionObserver thresholds: the contract's, and quarters for the largest share. */
export function thresholds(contract: number): number[] {
  const steps = new Set([0, 0.25, 0.5, 0.75, 1, contract]);
  return [...steps].filter((t) => t >= 0 && t <= 1).sort((a, b) => a - b);
}

export class Observer {
  private tracked = new Map<Element, Placement>();
  private intersection: IntersectionObserver;
  private mutation: MutationObserver;
  private onFocusIn = (e: Event) => this.focusEvent(e, true);
  private onFocusOut = (e: Event) => this.focusEvent(e, false);

  constructor(
    private sink: Sink,
    contractThreshold: number,
    private root: Document = document,
  ) {
    this.intersection = new IntersectionObserver((entries) => this.intersections(entries), {
      threshold: thresholds(contractThreshold),
    });
    this.mutation = new MutationObserver((records) => this.mutations(records));
    this.mutation.observe(root, { childList: true, subtree: true });
    root.addEventListener('focusin', this.onFocusIn, true);
    root.addEventListener('focusout', this.onFocusOut, true);
  }

  get size(): number {
    return this.tracked.size;
  }

  placement(element: Element): Placement | undefined {
    return this.tracked.get(element);
  }

  observe(element: Element, placement: Placement): void {
    const before = this.tracked.get(element);
    if (before !== undefined) this.unobserve(element);
    this.tracked.set(element, { ...placement });
    this.intersection.observe(element);
  }

  unobserve(element: Element): void {
    const placement = this.tracked.get(element);
    if (placement === undefined) return;
    this.tracked.delete(element);
    this.intersection.unobserve(element);
    this.sink.removed(element, placement);
  }

  /** Every element of a page view, when it ends. */
  forgetPageView(pageView: number): void {
    for (const [element, placement] of [...this.tracked]) {
      if (placement.pageView === pageView) {
        this.tracked.delete(element);
        this.intersection.unobserve(element);
      }
    }
  }

  disconnect(): void {
    this.intersection.disconnect();
    this.mutation.disconnect();
    this.root.removeEventListener('focusin', this.onFocusIn, true);
    this.root.removeEventListener('focusout', this.onFocusOut, true);
    this.tracked.clear();
  }

  private intersections(entries: IntersectionObserverEntry[]): void {
    for (const entry of entries) {
      const placement = this.tracked.get(entry.target);
      if (placement === undefined) continue;
      const fraction = entry.isIntersecting ? Math.min(1, Math.max(0, entry.intersectionRatio)) : 0;
      this.sink.visibility(entry.target, placement, fraction);
    }
  }

  private mutations(records: MutationRecord[]): void {
    if (!records.some((r) => r.removedNodes.length > 0)) return;
    for (const element of [...this.tracked.keys()]) {
      if (!element.isConnected) this.unobserve(element);
    }
  }

  private focusEvent(event: Event, focused: boolean): void {
    let node = event.target instanceof Element ? event.target : null;
    while (node !== null && !this.tracked.has(node)) node = node.parentElement;
    if (node === null) return;
    const placement = this.tracked.get(node);
    if (placement !== undefined) this.sink.focus(node, placement, focused);
  }
}
