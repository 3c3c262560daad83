import crypto from 'node:crypto';
import type { Request } from 'express';
import type { AnswerObserver } from '../draining-server';
import { UnauthenticatedError } from '../../domain/errors';
import type { Metrics } from '../../metrics';
import type { Handlers } from '../mount';

/**
 * Counts and times every answer of the app by its operationId ("none" when no route matched)
 * and status: the draining server's observer (no listener a request; see draining-server.ts).
 */
export function countAnswers(metrics: Metrics): AnswerObserver {
  return (req, res, seconds) => metrics.request((req as Request).operation?.id ?? 'none', res.statusCode, seconds);
}

/** The bearer token equals METRICS_TOKEN, compared in constant time. */
function presents(header: string | undefined, token: string): boolean {
  const match = header === undefined ? null : /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
  if (!match) return false;
  const [a, b] = [crypto.createHash('sha256').update(match[1]).digest(), crypto.createHash('sha256').update(token).digest()];
  return crypto.timingSafeEqual(a, b);
}

/** `GET /metrics`: Prometheus text; with METRICS_TOKEN set, only for a bearer of it. */
export function metricsHandlers(metrics: Metrics, token: string | undefined): Handlers {
  return {
    getMetrics: async (req, res) => {
      if (token !== undefined && !presents(req.headers.authorization, token)) throw new UnauthenticatedError();
      const { text, contentType } = await metrics.scrape();
      res.setHeader('Cache-Control', 'no-store');
      res.type(contentType).send(text);
    },
  };
}
