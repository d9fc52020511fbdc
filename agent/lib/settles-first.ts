/** Whether `first` settles (either way) before `second` resolves; a rejection of `second` is passed on. */
export function settlesFirst(first: Promise<unknown>, second: Promise<unknown>): Promise<boolean> {
  const done = () => true;
  return Promise.race([first.then(done, done), second.then(() => false)]);
}
