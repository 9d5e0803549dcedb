/** True for errors that mean the client went away mid-request (nothing to answer, nothing to log loudly). */
export function isClientAbort(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | null;
  return (
    e?.code === 'ECONNRESET' ||
    e?.code === 'ECONNABORTED' ||
    e?.code === 'EPIPE' ||
    e?.code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    e?.message === 'aborted'
  );
}
