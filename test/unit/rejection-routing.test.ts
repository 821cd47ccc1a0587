import { describe, expect, it } from 'vitest';
import {
  archiveKeys,
  parseArchiveLocation,
  parseReviewDecision,
  planRejection,
  type ReviewerWorkflowRules,
} from '../../src/domain/rejection-routing.ts';

const decision = (choice: string) => ({ from_name: 'review_decision', to_name: 'image', type: 'choices', value: { choices: [choice] } });
const reason = (text: string) => ({ from_name: 'review_reason', to_name: 'image', type: 'textarea', value: { text: [text] } });

const rules = (over: Partial<ReviewerWorkflowRules> = {}): ReviewerWorkflowRules => ({
  rejectionMode: 'route_to_workflow',
  rejectionRouteWorkflowId: 1,
  rejectionReturnToOriginal: false,
  rejectionFlagAnnotator: true,
  maxReworkIterations: null,
  ...over,
});
const item = { priorRejections: 0, originalAnnotatorId: 7, originalAnnotatorAvailable: true };

describe('review decisions', () => {
  it('reads accept/reject and the reason', () => {
    expect(parseReviewDecision([decision('accept')])).toEqual({ decision: 'accept', reason: null });
    expect(parseReviewDecision([decision('Reject'), reason(' box too loose ')])).toEqual({ decision: 'reject', reason: 'box too loose' });
  });
  it('returns null without a recognisable decision', () => {
    expect(parseReviewDecision([])).toBeNull();
    expect(parseReviewDecision(null)).toBeNull();
    expect(parseReviewDecision([decision('maybe')])).toBeNull();
    expect(parseReviewDecision([{ from_name: 'label', type: 'choices', value: { choices: ['accept'] } }])).toBeNull();
  });
});

describe('rejection routing', () => {
  it('routes to the route workflow, open to anyone by default', () => {
    expect(planRejection(rules(), item)).toEqual({
      actionTaken: 'route_to_workflow',
      reworkIteration: 1,
      archive: false,
      escalated: false,
      route: { workflowId: 1, annotatorId: null },
      flagAnnotator: true,
    });
  });
  it('returns the item to the original annotator when asked, unless they are gone', () => {
    expect(planRejection(rules({ rejectionReturnToOriginal: true }), item).route).toEqual({ workflowId: 1, annotatorId: 7 });
    expect(
      planRejection(rules({ rejectionReturnToOriginal: true }), { ...item, originalAnnotatorAvailable: false }).route,
    ).toEqual({ workflowId: 1, annotatorId: null });
  });
  it('escalates past maxReworkIterations: archived, not routed', () => {
    const capped = rules({ maxReworkIterations: 2 });
    expect(planRejection(capped, { ...item, priorRejections: 1 }).actionTaken).toBe('route_to_workflow');
    expect(planRejection(capped, { ...item, priorRejections: 2 })).toMatchObject({
      actionTaken: 'archive',
      archive: true,
      escalated: true,
      route: null,
      reworkIteration: 3,
    });
    expect(planRejection(rules({ maxReworkIterations: 0 }), item)).toMatchObject({ escalated: true, route: null });
  });
  it('archives or only records for the other modes', () => {
    expect(planRejection(rules({ rejectionMode: 'archive' }), item)).toMatchObject({ actionTaken: 'archive', archive: true, escalated: false, route: null });
    expect(planRejection(rules({ rejectionMode: 'none' }), item)).toMatchObject({ actionTaken: 'none', archive: false, route: null });
  });
  it('flags the original annotator only when configured', () => {
    expect(planRejection(rules({ rejectionFlagAnnotator: false }), item).flagAnnotator).toBe(false);
    expect(planRejection(rules(), { ...item, originalAnnotatorId: null }).flagAnnotator).toBe(false);
  });
});

describe('archive location', () => {
  it('accepts s3://bucket/prefix or a prefix in the fleet bucket', () => {
    expect(parseArchiveLocation('s3://other/rejected', 'main')).toEqual({ bucket: 'other', prefix: 'rejected/' });
    expect(parseArchiveLocation('s3://other', 'main')).toEqual({ bucket: 'other', prefix: '' });
    expect(parseArchiveLocation('/archive/x/', 'main')).toEqual({ bucket: 'main', prefix: 'archive/x/' });
    expect(parseArchiveLocation(null, 'main')).toEqual({ bucket: 'main', prefix: 'rejections/' });
  });
  it('derives stable keys per reviewer task', () => {
    expect(archiveKeys({ bucket: 'b', prefix: 'arch/' }, 3, 42, 'images/cars/001 a.jpg')).toEqual({
      bucket: 'b',
      image: 'arch/workflow-3/task-42/001_a.jpg',
      annotation: 'arch/workflow-3/task-42/annotation.json',
    });
  });
});
