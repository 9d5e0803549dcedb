/**
 * Tracing is off by default, and then nothing of the OpenTelemetry SDK is loaded: the SDK modules are imported
 * only when `tracing.enabled` is set.
 */
import type { Config } from '../config/schema.ts';
import type { TracingLog } from './reporting-exporter.ts';
import type { Tracing } from './tracing.ts';

/**
 * The process's tracing for `config`, or null when it is disabled. The OTLP/HTTP exporter reads the standard
 * `OTEL_EXPORTER_OTLP_*` environment variables, the resource `OTEL_SERVICE_NAME` (default `berth`) and
 * `OTEL_RESOURCE_ATTRIBUTES`, the batch processor `OTEL_BSP_*`. Export failures are reported to `log`.
 */
export async function createTracing(config: Config['tracing'], log: TracingLog): Promise<Tracing | null> {
  if (!config.enabled) return null;
  const { startTracing } = await import('./provider.ts');
  return startTracing({ sampleRatio: config.sampleRatio, log });
}
