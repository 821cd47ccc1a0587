/**
 * The one accessor for "this annotator's Label Studio": where the fleet reaches it directly and
 * with which token, plus the webhook secret its projects' webhooks must carry.
 *
 * - Address: the annotators row's container_ip:container_port, which the fleet's annotators step
 *   writes from the backend's observed address (Docker host networking: 127.0.0.1:<LS_PORT_BASE +
 *   id>; bridge: the container's address on the fleet network; ECS: the task's address). Tests and
 *   development may register any instance there (test/e2e/batches.test.ts runs Label Studio from
 *   the venv on 127.0.0.1 and writes its port).
 * - Token: annotators.api_token_enc (sealed with FLEET_SECRET_KEY), set when the instance reports it.
 * - Webhook secret: derived per start generation (orchestrator/instance-spec.ts webhookSecret) and
 *   never stored; POST /api/webhook compares against the same derivation.
 *
 * Label Studio refuses webhook URLs that resolve to private or loopback addresses (SSRF
 * protection, on by default in 1.23), and FLEET_CALLBACK_URL is one. The fleet's instances run with
 * USE_DEFAULT_BANNED_SUBNETS=false and USER_ADDITIONAL_BANNED_SUBNETS=169.254.0.0/16 (cloud
 * metadata stays blocked; orchestrator/instance-spec.ts); an instance started any other way needs
 * the same, or provisioning fails saying so (src/workflows/provision.ts).
 */
import type { AppContext } from '../context.ts';
import type { Annotator } from '../db/types.ts';
import { webhookSecret } from '../../orchestrator/instance-spec.ts';
import { LabelStudioClient } from './client.ts';

export type InstanceAnnotator = Pick<Annotator, 'id' | 'status' | 'containerIp' | 'containerPort' | 'apiTokenEnc'>;

export class InstanceUnavailable extends Error {}

/** Base URL of the annotator's instance as the fleet reaches it, or null when it has none yet. */
export function instanceBaseUrl(a: Pick<Annotator, 'containerIp' | 'containerPort'>): string | null {
  if (!a.containerIp || !a.containerPort) return null;
  const host = a.containerIp.includes(':') && !a.containerIp.startsWith('[') ? `[${a.containerIp}]` : a.containerIp;
  return `http://${host}:${a.containerPort}`;
}

/**
 * A client for the annotator's Label Studio. Throws InstanceUnavailable when the annotator is not
 * active or its address or token is not known yet (batches wait for it).
 */
export function labelStudioFor(ctx: Pick<AppContext, 'secrets'>, annotator: InstanceAnnotator, opts: { timeoutMs?: number } = {}) {
  if (annotator.status !== 'active') throw new InstanceUnavailable(`annotator ${annotator.id} is ${annotator.status}, not active`);
  const baseUrl = instanceBaseUrl(annotator);
  if (!baseUrl) throw new InstanceUnavailable(`annotator ${annotator.id} has no Label Studio address yet`);
  if (!annotator.apiTokenEnc) throw new InstanceUnavailable(`annotator ${annotator.id} has not reported its API token yet`);
  return new LabelStudioClient({ baseUrl, token: ctx.secrets.decrypt(annotator.apiTokenEnc), timeoutMs: opts.timeoutMs });
}

/** The X-Webhook-Secret the annotator's instance presents for its current start. */
export function currentWebhookSecret(ctx: Pick<AppContext, 'secrets'>, annotator: Pick<Annotator, 'id' | 'startGeneration'>): string {
  return webhookSecret(ctx.secrets, annotator.id, annotator.startGeneration);
}
