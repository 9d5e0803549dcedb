/** Errors as the OpenTelemetry API records them. */

export interface ExceptionFields {
  readonly name?: string;
  readonly message: string;
  readonly stack?: string;
}

/** `error` as an exception event's fields: an Error keeps its name, message and stack; anything else its text. */
export function exceptionOf(error: unknown): ExceptionFields {
  if (error instanceof Error) {
    return {
      name: error.name,
      message: error.message,
      ...(error.stack !== undefined ? { stack: error.stack } : {}),
    };
  }
  return { message: String(error) };
}
