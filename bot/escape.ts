// Escaping for Telegram's HTML parse mode, which wants `<`, `>` and `&` escaped in text (and `"` in
// attribute values) and knows no other named entities.

export function escapeHtml(text: string): string {
  return text.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
}

export function escapeAttr(text: string): string {
  return escapeHtml(text).replace(/"/g, "&quot;");
}
