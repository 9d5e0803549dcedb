/** The one error type of the Harbor scanner client and report mapping. */

/**
 * What went wrong talking to a scanner adapter:
 * - `HTTP_STATUS`: an unexpected status (`status` says which; the message is the adapter's error message when
 *   it sent one);
 * - `NOT_FOUND`: the adapter does not know the scan request id (404);
 * - `BAD_RESPONSE`: a body that is not the JSON document the operation returns, or one too large;
 * - `MALFORMED_REPORT`: a report that is not JSON or not shaped like a Harbor vulnerability report;
 * - `TIMEOUT`: one request took longer than the client's timeout;
 * - `REPORT_TIMEOUT`: the report was still pending when the polling budget ran out;
 * - `ABORTED`: the caller's signal aborted the operation;
 * - `NETWORK`: the adapter could not be reached (connection refused, reset, DNS).
 */
export type ScannerErrorCode =
  | 'HTTP_STATUS'
  | 'NOT_FOUND'
  | 'BAD_RESPONSE'
  | 'MALFORMED_REPORT'
  | 'TIMEOUT'
  | 'REPORT_TIMEOUT'
  | 'ABORTED'
  | 'NETWORK';

export class ScannerError extends Error {
  override readonly name = 'ScannerError';

  constructor(
    readonly code: ScannerErrorCode,
    message: string,
    /** The HTTP status of the answer at fault, null when there was none. */
    readonly status: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
