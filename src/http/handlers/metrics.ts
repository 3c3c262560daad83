import type { Request } from 'express';
import type { AnswerObserver } from '../draining-server';
import type { Metrics } from '../../metrics';
import type { Handlers } from '../mount';

/**
 * Counts and times every answer of the app by its operationId ("none" when no route matched)
 * and status: the draining server's observer (no listener a request; see draining-server.ts).
 */
export function countAnswers(metrics: Metrics): AnswerObserver {
  return (req, res, seconds) => metrics.request((req as Request).operation?.id ?? 'none', res.statusCode, seconds);
}

/** `GET /metrics`: Prometheus text (the policy, `caller: metrics_token`, checks METRICS_TOKEN). */
export function metricsHandlers(metrics: Metrics): Handlers {
  return {
    getMetrics: async (_req, res) => {
      const { text, contentType } = await metrics.scrape();
      res.setHeader('Cache-Control', 'no-store');
      res.type(contentType).send(text);
    },
  };
}
