/**
 * Up/Down recall of sent messages in the chat input, like a shell. Pure.
 */
export class InputHistory {
  private entries: string[] = [];
  private cursor = 0;
  private draft = '';

  constructor(private readonly max = 100) {}

  /** Remember a sent message (not a repeat of the last one) and reset the recall. */
  push(entry: string): void {
    const text = entry.trim();
    if (text && this.entries[this.entries.length - 1] !== text) {
      this.entries.push(text);
      if (this.entries.length > this.max) {
        this.entries.shift();
      }
    }
    this.cursor = this.entries.length;
    this.draft = '';
  }

  /** The previous entry (Up), keeping `current` as the draft; null at the oldest. */
  prev(current: string): string | null {
    if (this.cursor === 0) {
      return null;
    }
    if (this.cursor === this.entries.length) {
      this.draft = current;
    }
    this.cursor--;
    return this.entries[this.cursor];
  }

  /** The next entry (Down), then the draft; null when not recalling. */
  next(): string | null {
    if (this.cursor >= this.entries.length) {
      return null;
    }
    this.cursor++;
    return this.cursor === this.entries.length ? this.draft : this.entries[this.cursor];
  }

  get size(): number {
    return this.entries.length;
  }
}
