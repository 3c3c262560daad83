import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { loadApiSpec } from '../../src/api-spec';

let validators: Map<string, ValidateFunction> | undefined;

/** One validator per event type: openapi.yaml's `webhooks` section, its `$ref`s resolved in the spec. */
function payloadValidators(): Map<string, ValidateFunction> {
  if (validators) return validators;
  const spec = loadApiSpec() as { webhooks: Record<string, unknown> };
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  addFormats(ajv);
  ajv.addSchema(spec, 'spec');
  validators = new Map(Object.keys(spec.webhooks).map((type) => [type, ajv.compile({ $ref: `spec#/webhooks/${type}/post/requestBody/content/application~1json/schema` })]));
  return validators;
}

/**
 * Why a delivered body does not match openapi.yaml's payload for its `type` (undefined: it does):
 * the webhooks section is to events what response validation is to answers, so it cannot drift.
 */
export function webhookPayloadProblem(body: unknown): string | undefined {
  const type = (body as { type?: unknown } | null)?.type;
  const validate = typeof type === 'string' ? payloadValidators().get(type) : undefined;
  if (!validate) return `no payload schema for type ${JSON.stringify(type)}`;
  if (validate(body)) return undefined;
  return `${type}: ${(validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}`;
}
