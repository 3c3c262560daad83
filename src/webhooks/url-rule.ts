import dns from 'node:dns';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { ValidationError } from '../domain/errors';

/** What WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE relax (local development and tests only). */
export interface WebhookUrlPolicy {
  allowHttp: boolean;
  allowPrivate: boolean;
}

/** How a host name is resolved (node's dns.lookup, all addresses); a test may give its own. */
export type Resolve = (host: string) => Promise<string[]>;

export const resolveAll: Resolve = async (host) => (await dns.promises.lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * Why an address may not be a webhook's: anything but a public unicast address (loopback,
 * private, link-local and so the cloud metadata address, unique-local, CGNAT, multicast,
 * unspecified, reserved and documentation ranges, IPv4-mapped forms of these). The same rule
 * as request-filtering-agent's, which checks it again at every delivery, after DNS.
 */
export function internalAddress(address: string): string | undefined {
  if (!ipaddr.isValid(address)) return 'not an IP address';
  const range = ipaddr.process(address).range();
  return range === 'unicast' ? undefined : `${address} is a ${range} address`;
}

function refuse(message: string): never {
  throw new ValidationError(`url: ${message}`, [{ path: '/body/url', message }]);
}

/**
 * A webhook's URL (API.md §2.9): `https` (or `http` with WEBHOOK_ALLOW_HTTP), no credentials, and
 * a host that is, or resolves only to, public addresses (unless WEBHOOK_ALLOW_PRIVATE). Returns
 * the URL as the WHATWG parser normalises it. The host is checked here once, and again at every
 * delivery (a name may resolve elsewhere later).
 */
export async function checkWebhookUrl(raw: string, policy: WebhookUrlPolicy, resolve: Resolve = resolveAll): Promise<string> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return refuse('is not an absolute URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) refuse(policy.allowHttp ? 'must be http or https' : 'must be https');
  if (url.username || url.password) refuse('must not hold credentials');
  if (url.hash) refuse('must not have a fragment');
  if (policy.allowPrivate) return url.href;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host)) {
    const why = internalAddress(host);
    if (why) refuse(`must name a public host (${why})`);
    return url.href;
  }
  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch {
    return refuse(`host ${host} does not resolve`);
  }
  for (const address of addresses) {
    const why = internalAddress(address);
    if (why) refuse(`must name a public host (${host} resolves to ${why.replace(/^\S+ is/, 'an address that is')})`);
  }
  return url.href;
}
