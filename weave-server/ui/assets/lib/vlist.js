// @ts-check
// A list that puts only the rows in view (plus a few) in the page, whatever its length: a
// spacer gives the scroll height, and rows of one fixed height are placed at their offsets.

import { h } from './dom.js';

/**
 * @template T
 */
export class VirtualList {
  /**
   * @param {HTMLElement} scroller the scrolling element (its height is set by CSS)
   * @param {{rowHeight: number, render: (item: T, index: number) => HTMLElement, overscan?: number}} opts
   */
  constructor(scroller, opts) {
    this.scroller = scroller;
    this.rowHeight = opts.rowHeight;
    this.renderRow = opts.render;
    this.overscan = opts.overscan ?? 8;
    /** @type {T[]} */
    this.items = [];
    this.spacer = h('div', { class: 'vlist-spacer' });
    this.scroller.classList.add('vlist');
    this.scroller.append(this.spacer);
    /** @type {number} */
    this.frame = 0;
    /** @type {[number, number]} */
    this.range = [0, 0];
    this.onScroll = () => {
      if (!this.frame) {
        this.frame = requestAnimationFrame(() => {
          this.frame = 0;
          this.draw(false);
        });
      }
    };
    this.scroller.addEventListener('scroll', this.onScroll, { passive: true });
    this.resize = new ResizeObserver(() => this.draw(false));
    this.resize.observe(this.scroller);
  }

  /** Replaces the items and redraws. @param {T[]} items */
  setItems(items) {
    this.items = items;
    this.spacer.style.height = `${items.length * this.rowHeight}px`;
    this.draw(true);
  }

  /** Redraws the rows in view (after their data changed). */
  refresh() {
    this.draw(true);
  }

  /** Scrolls so that row `i` is in view. @param {number} i */
  scrollToIndex(i) {
    const top = i * this.rowHeight;
    const view = this.scroller.clientHeight;
    if (top < this.scroller.scrollTop || top + this.rowHeight > this.scroller.scrollTop + view) {
      this.scroller.scrollTop = Math.max(0, top - view / 3);
    }
    this.draw(true);
  }

  /** @param {boolean} force */
  draw(force) {
    const view = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / this.rowHeight) - this.overscan);
    const last = Math.min(this.items.length, Math.ceil((this.scroller.scrollTop + view) / this.rowHeight) + this.overscan);
    if (!force && first === this.range[0] && last === this.range[1]) return;
    this.range = [first, last];
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const row = this.renderRow(this.items[i], i);
      row.classList.add('vlist-row');
      row.style.setProperty('transform', `translateY(${i * this.rowHeight}px)`);
      row.style.setProperty('height', `${this.rowHeight}px`);
      frag.append(row);
    }
    while (this.spacer.firstChild) this.spacer.firstChild.remove();
    this.spacer.append(frag);
  }

  /** Stops listening. */
  destroy() {
    this.scroller.removeEventListener('scroll', this.onScroll);
    this.resize.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}
