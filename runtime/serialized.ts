/**
 * `work`, run one call at a time: a call made while one runs starts after it, and each call gets its
 * own result. For the syncs that compare against what the last one left (tasks/shared-files.ts,
 * tasks/shared-settings.ts): two at once would both act on the same old state.
 */
export function serialized<T>(work: () => Promise<T>): () => Promise<T> {
  let last: Promise<unknown> = Promise.resolve();
  return () => {
    const next = last.then(work);
    last = next.catch(() => {});
    return next;
  };
}
