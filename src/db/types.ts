/** Table types of the schema in migrations/: one interface per table, camelCase via Kysely's CamelCasePlugin. */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { KeyProblem } from '../domain/object-keys.ts';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
/** When the reconciler next looks at a row (migrations/0021_due.sql); null: not until a wake-up. */
type DueAt = ColumnType<Date | null, Date | null | undefined, Date | null>;
type Json = ColumnType<unknown, string, string>;

export interface AdminUsersTable {
  id: Generated<number>;
  email: string;
  passwordHash: string;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
}

export interface SessionsTable {
  id: Generated<number>;
  tokenHash: string;
  adminUserId: number;
  expiresAt: Timestamp;
  revokedAt: Date | null;
  createdAt: CreatedAt;
}

export interface LoginThrottleTable {
  key: string;
  attempts: number;
  strikes: Generated<number>;
  blockedUntil: Date | null;
  lastAttemptAt: Timestamp;
}

export interface RolesTable {
  id: Generated<number>;
  name: string;
  description: string | null;
  color: string | null;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
}

export interface LabelingConfigsTable {
  id: Generated<number>;
  name: string;
  description: string | null;
  configXml: string;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
}

export type RejectionMode = 'none' | 'archive' | 'route_to_workflow';

export interface WorkflowsTable {
  id: Generated<number>;
  name: string;
  roleId: number | null;
  labelingConfigId: number | null;
  previousWorkflowId: number | null;
  s3SourcePath: string;
  s3ExportPath: string;
  imagesPerProject: Generated<number>;
  maxProjects: number | null;
  estimatedTimeMinutes: number | null;
  autoAssign: Generated<boolean>;
  goldStandardRate: Generated<number>;
  shuffleImages: Generated<boolean>;
  isActive: Generated<boolean>;
  totalImagesAvailable: Generated<number>;
  totalImagesAssigned: Generated<number>;
  rejectionMode: Generated<RejectionMode>;
  rejectionArchiveBucket: string | null;
  rejectionRouteWorkflowId: number | null;
  rejectionReturnToOriginal: Generated<boolean>;
  rejectionFlagAnnotator: Generated<boolean>;
  maxReworkIterations: number | null;
  // Overlap and consensus (migrations/0020_overlap.sql)
  overlap: Generated<number>;
  consensusThreshold: number | null;
  adjudicationWorkflowId: number | null;
  /** Batches untouched this many hours are reclaimed (migrations/0017_batch_truth.sql); null: never. */
  expiryHours: number | null;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
  // Reconcile when due (migrations/0021_due.sql): the S3 catalog of a root workflow
  catalogDueAt: DueAt;
}

export interface GoldTasksTable {
  id: Generated<number>;
  name: string | null;
  s3ImageKey: string;
  expectedLabels: Json;
  labelingConfigId: number;
  category: string | null;
  difficulty: 'easy' | 'medium' | 'hard' | null;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
}

export type AnnotatorStatus = 'created' | 'starting' | 'active' | 'stopping' | 'stopped' | 'error' | 'deleted';

export interface AnnotatorsTable {
  id: Generated<number>;
  name: string;
  email: string;
  roleId: number | null;
  status: Generated<AnnotatorStatus>;
  statusReason: string | null;
  statusChangedAt: Timestamp;
  containerId: string | null;
  containerIp: string | null;
  containerPort: number | null;
  subdomain: string;
  databaseName: string | null;
  apiTokenEnc: string | null;
  lsUserId: number | null;
  notes: string | null;
  lastActiveAt: Date | null;
  rejectionCount: Generated<number>;
  reviewedCount: Generated<number>;
  webhookSecretHash: string | null;
  autoAssignPaused: Generated<boolean>;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
  // Fleet (migrations/0002_fleet.sql)
  startGeneration: Generated<number>;
  startRequestedAt: Date | null;
  startPhase: StartPhase | null;
  phaseStartedAt: Date | null;
  tokenReportedAt: Date | null;
  routedAt: Date | null;
  restartCount: Generated<number>;
  lastRestartAt: Date | null;
  nextRestartAt: Date | null;
  lsPasswordEnc: string | null;
  lsPasswordVersion: Generated<number>;
  containerPasswordVersion: number | null;
  cleanedUpAt: Date | null;
  /** When the reconciler made the database of an annotator never started (migrations/0041_database_prepared.sql). */
  databasePreparedAt: Date | null;
  // Reconcile when due (migrations/0021_due.sql): the instance, and auto-assignment
  dueAt: DueAt;
  assignDueAt: DueAt;
}

/** Where a start is (migrations/0002_fleet.sql); null when not starting. */
export type StartPhase = 'database' | 'container' | 'healthy' | 'token' | 'route';

export type AssignmentStatus = 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled';

export interface AssignmentsTable {
  id: Generated<number>;
  workflowId: number;
  annotatorId: number;
  lsProjectId: number | null;
  taskCount: Generated<number>;
  goldTaskCount: Generated<number>;
  completedCount: Generated<number>;
  status: Generated<AssignmentStatus>;
  error: string | null;
  exportKey: string | null;
  startedAt: Date | null;
  completedAt: Date | null;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
  // Batches (migrations/0003_batches.sql)
  provisionAttempts: Generated<number>;
  lsWebhookId: number | null;
  webhookGeneration: number | null;
  lsCheckedAt: Date | null;
  // Label Studio is the truth (migrations/0017_batch_truth.sql)
  problemCode: string | null;
  problemMessage: string | null;
  problemSince: Date | null;
  removedTaskCount: Generated<number>;
  unknownLsTaskCount: Generated<number>;
  // Reconcile when due (migrations/0021_due.sql)
  dueAt: DueAt;
}

export interface AssignmentTasksTable {
  id: Generated<number>;
  assignmentId: number;
  s3ImageKey: string;
  goldTaskId: number | null;
  isGold: Generated<boolean>;
  lsTaskId: number | null;
  lsAnnotationId: number | null;
  result: Json | null;
  leadTimeSeconds: number | null;
  status: Generated<'open' | 'annotated' | 'removed'>;
  annotatedAt: Date | null;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
  // Batches (migrations/0003_batches.sql)
  position: Generated<number>;
  workItemId: number | null;
  lsAnnotationUpdatedAt: Date | string | null;
  skipped: Generated<boolean>;
  reviewDecision: 'accept' | 'reject' | null;
  reviewReason: string | null;
  reviewAppliedAt: Date | null;
  // Tasks deleted in Label Studio (migrations/0017_batch_truth.sql)
  removedLsTaskId: number | null;
  removedAt: Date | null;
}

/** Incremental S3 listing state of a root workflow (migrations/0003_batches.sql). */
export interface CatalogSyncsTable {
  workflowId: number;
  bucket: string;
  prefix: string;
  lastKey: string | null;
  objectCount: Generated<number>;
  lastSyncAt: Date | null;
  lastFullSyncAt: Date | null;
  error: string | null;
  updatedAt: Timestamp;
  /** Keys skipped as unaddressable (src/domain/object-keys.ts) since the last full listing. */
  skippedCount: Generated<number>;
  /** Up to 10 of them: [{key, problem}] (jsonb; written as JSON text). */
  skippedExamples: ColumnType<SkippedKeyExample[], string | undefined, string>;
}

export interface SkippedKeyExample {
  key: string;
  problem: KeyProblem;
}

export type WorkItemSource = 'catalog' | 'chain' | 'rework';
export type WorkItemStatus = 'queued' | 'reserved' | 'done' | 'rejected' | 'escalated' | 'gone';

/** One image waiting for, reserved by or done in one workflow (migrations/0003_batches.sql). */
export interface WorkItemsTable {
  id: Generated<number>;
  workflowId: number;
  imageKey: string;
  source: WorkItemSource;
  status: Generated<WorkItemStatus>;
  priority: Generated<number>;
  sortKey: Generated<number>;
  assignmentId: number | null;
  targetAnnotatorId: number | null;
  upstreamTaskId: number | null;
  originTaskId: number | null;
  prediction: Json | null;
  reworkIteration: Generated<number>;
  lastSeenAt: Date | null;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
}

/** One annotator's seat on an item of an overlap workflow (migrations/0020_overlap.sql). */
export interface WorkItemSeatsTable {
  workItemId: number;
  seat: number;
  annotatorId: number;
  assignmentId: number;
  status: Generated<'open' | 'done'>;
  taskId: number | null;
  createdAt: CreatedAt;
}

export type ConsensusOutcome = 'accepted' | 'adjudication' | 'adjudicated';

/** An item's consensus once every seat is done (migrations/0020_overlap.sql). */
export interface ItemConsensusTable {
  workItemId: number;
  workflowId: number;
  imageKey: string;
  agreement: number | null;
  confidence: number;
  method: string;
  result: Json;
  answers: Json;
  controls: Json;
  outcome: ConsensusOutcome;
  adjudicationItemId: number | null;
  adjudicatedResult: Json | null;
  adjudicatorId: number | null;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
}

/** Overlap batches whose JSONL export is to be written again (migrations/0023_overlap_exports.sql). */
export interface BatchExportRefreshTable {
  assignmentId: number;
  version: Generated<number>;
  requestedAt: Generated<Date>;
}

/** A stored Dawid–Skene fit per workflow and choice control (migrations/0027_consensus_fits.sql). */
export interface ConsensusFitsTable {
  workflowId: number;
  fromName: string;
  itemsFitted: number;
  fit: Json | null;
  iterations: number | null;
  fittedAt: Generated<Date>;
}

export interface AgreementControlsTable {
  workflowId: number;
  fromName: string;
  type: string;
  items: Generated<number>;
  agreementSum: Generated<number>;
}
export interface AgreementCoincidencesTable {
  workflowId: number;
  fromName: string;
  valueA: string;
  valueB: string;
  o: Generated<number>;
}
export interface AgreementPairsTable {
  workflowId: number;
  fromName: string;
  annotatorA: number;
  annotatorB: number;
  items: Generated<number>;
  similaritySum: Generated<number>;
}
export interface AgreementPairLabelsTable {
  workflowId: number;
  fromName: string;
  annotatorA: number;
  annotatorB: number;
  labelA: string;
  labelB: string;
  n: Generated<number>;
}
export interface AgreementAnnotatorsTable {
  workflowId: number;
  annotatorId: number;
  items: Generated<number>;
  answers: Generated<number>;
  similaritySum: Generated<number>;
}

export interface GoldResultsTable {
  id: Generated<number>;
  assignmentTaskId: number;
  assignmentId: number;
  annotatorId: number;
  goldTaskId: number | null;
  score: number;
  details: Json | null;
  evaluatedAt: Timestamp;
}

export interface RejectionsTable {
  id: Generated<number>;
  workflowId: number;
  originalAnnotatorId: number | null;
  reviewerAnnotatorId: number | null;
  originalAssignmentId: number | null;
  reviewerAssignmentId: number | null;
  routedToAssignmentId: number | null;
  imageKey: string;
  reason: string | null;
  actionTaken: Generated<RejectionMode>;
  reworkIteration: Generated<number>;
  createdAt: CreatedAt;
  // Batches (migrations/0003_batches.sql)
  routedWorkItemId: number | null;
  reviewerTaskId: number | null;
}

export interface ContainerEventsTable {
  id: Generated<number>;
  annotatorId: number;
  eventType: string;
  fromStatus: string | null;
  toStatus: string | null;
  message: string | null;
  details: Json | null;
  createdAt: CreatedAt;
}

export interface AnnotationEventsTable {
  id: Generated<number>;
  annotatorId: number;
  assignmentId: number | null;
  eventType: string;
  lsProjectId: number | null;
  lsTaskId: number | null;
  lsAnnotationId: number;
  annotationUpdatedAt: Date | string | null;
  timeSpentMs: number | null;
  source: Generated<'webhook' | 'reconcile'>;
  createdAt: CreatedAt;
}

export interface SettingsTable {
  id: Generated<number>;
  key: string;
  value: Json;
  description: string | null;
  updatedAt: Timestamp;
}

/** Rollup of annotation_created events per annotator per UTC hour (migrations/0004_monitoring.sql, trigger-maintained). */
export interface AnnotationHourlyTable {
  annotatorId: number;
  hour: Date;
  createdCount: number;
  timedCount: number;
  timeSpentMs: number;
  under10s: number;
  under30s: number;
  under60s: number;
  over60s: number;
}

/** annotation_created events per annotator per UTC day (migrations/0033_annotation_daily.sql); as AnnotationHourlyTable. */
export interface AnnotationDailyTable extends Omit<AnnotationHourlyTable, 'hour'> {
  /** Start of the UTC day. */
  day: Date;
}

/** Gold accuracy per annotator and its below-threshold flag state (migrations/0004_monitoring.sql). */
export interface AnnotatorQualityTable {
  annotatorId: number;
  evaluationCount: Generated<number>;
  scoreSum: ColumnType<string, string | number | undefined, string | number>;
  needsCheck: Generated<boolean>;
  checkedThreshold: number | null;
  checkedMinEvaluations: number | null;
  checkedAt: Date | null;
  flagged: Generated<boolean>;
  flaggedAt: Date | null;
}

// Pipelines (migrations/0013_pipeline.sql): API keys, idempotency keys, rate limits, outbound webhooks.
export type ApiKeyScope = 'read' | 'write' | 'admin';

export interface ApiKeysTable {
  id: Generated<number>;
  name: string;
  prefix: string;
  keyHash: string;
  scopes: ApiKeyScope[];
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  createdBy: number;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
}

export interface IdempotencyKeysTable {
  id: Generated<number>;
  credential: string;
  key: string;
  fingerprint: string;
  state: Generated<'in_flight' | 'done'>;
  lockedUntil: Date | null;
  responseStatus: number | null;
  responseHeaders: Json | null;
  responseBody: string | null;
  createdAt: Timestamp;
}

export interface WebhookSubscriptionsTable {
  id: Generated<number>;
  url: string;
  description: string | null;
  eventTypes: string[];
  workflowId: number | null;
  headerNames: Generated<string[]>;
  headersEnc: string | null;
  secretEnc: string;
  secretPrefix: string;
  isActive: Generated<boolean>;
  createdAt: CreatedAt;
  updatedAt: Timestamp;
}

export interface WebhookEventsTable {
  id: string;
  type: string;
  workflowId: number | null;
  dedupeKey: string | null;
  payload: Json;
  createdAt: CreatedAt;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface WebhookDeliveriesTable {
  id: Generated<number>;
  subscriptionId: number;
  eventId: string;
  status: Generated<DeliveryStatus>;
  attemptCount: Generated<number>;
  nextAttemptAt: Date | null;
  windowStartedAt: Timestamp;
  lastAttemptAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: CreatedAt;
}

export interface WebhookAttemptsTable {
  id: Generated<number>;
  deliveryId: number;
  attemptedAt: Date;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseExcerpt: string | null;
}

/** Annotators per status and role (migrations/0014_rollups.sql, trigger-maintained); role 0 = none. */
export interface AnnotatorCountsTable {
  status: AnnotatorStatus;
  roleId: number;
  annotators: number;
}

/** Closed assignments (not pending or in_progress) per workflow and status (migrations/0014_rollups.sql). */
export interface WorkflowAssignmentCountsTable {
  workflowId: number;
  status: AssignmentStatus;
  assignments: number;
  completedTasks: number;
}

/** Closed assignments per annotator and status (migrations/0014_rollups.sql). */
export interface AnnotatorAssignmentCountsTable {
  annotatorId: number;
  status: AssignmentStatus;
  assignments: number;
}

/** Rejections per reviewing workflow and action taken (migrations/0014_rollups.sql). */
export interface WorkflowRejectionCountsTable {
  workflowId: number;
  actionTaken: RejectionMode;
  rejections: number;
}

/** The workflow graph's stats, one row per workflow (migrations/0026_workflow_stats.sql). */
export interface WorkflowStatsTable {
  workflowId: number;
  assignments: number;
  completed: number;
  /** bigint: returned as a string by node-pg. */
  tasks: string | number;
  annotators: number;
  rejections: number;
}

/** Contributions to workflow_stats not folded into it yet (migrations/0026_workflow_stats.sql). */
export type WorkflowStatDeltasTable = WorkflowStatsTable;

/** Open assignments per (workflow, annotator) (migrations/0026_workflow_stats.sql). */
export interface WorkflowAnnotatorOpenTable {
  workflowId: number;
  annotatorId: number;
  assignments: number;
}

/** annotation_created events per UTC hour, whole fleet (migrations/0026_workflow_stats.sql); also its deltas' shape. */
export interface AnnotationFleetHourlyTable {
  hour: Date;
  createdCount: number;
}

/** The installation's identity, one row (migrations/0016_installation.sql, orchestrator/ownership.ts). */
export interface InstallationTable {
  singleton: Generated<boolean>;
  id: string;
  adoptsUnmarked: boolean;
  createdAt: Generated<Date>;
}

export interface Database {
  installation: InstallationTable;
  adminUsers: AdminUsersTable;
  sessions: SessionsTable;
  loginThrottle: LoginThrottleTable;
  roles: RolesTable;
  labelingConfigs: LabelingConfigsTable;
  workflows: WorkflowsTable;
  goldTasks: GoldTasksTable;
  annotators: AnnotatorsTable;
  assignments: AssignmentsTable;
  assignmentTasks: AssignmentTasksTable;
  goldResults: GoldResultsTable;
  rejections: RejectionsTable;
  containerEvents: ContainerEventsTable;
  annotationEvents: AnnotationEventsTable;
  settings: SettingsTable;
  annotationHourly: AnnotationHourlyTable;
  annotationDaily: AnnotationDailyTable;
  annotatorQuality: AnnotatorQualityTable;
  catalogSyncs: CatalogSyncsTable;
  workItems: WorkItemsTable;
  workItemSeats: WorkItemSeatsTable;
  itemConsensus: ItemConsensusTable;
  agreementControls: AgreementControlsTable;
  consensusFits: ConsensusFitsTable;
  agreementCoincidences: AgreementCoincidencesTable;
  agreementPairs: AgreementPairsTable;
  agreementPairLabels: AgreementPairLabelsTable;
  agreementAnnotators: AgreementAnnotatorsTable;
  batchExportRefresh: BatchExportRefreshTable;
  apiKeys: ApiKeysTable;
  idempotencyKeys: IdempotencyKeysTable;
  webhookSubscriptions: WebhookSubscriptionsTable;
  webhookEvents: WebhookEventsTable;
  webhookDeliveries: WebhookDeliveriesTable;
  webhookAttempts: WebhookAttemptsTable;
  annotatorCounts: AnnotatorCountsTable;
  workflowAssignmentCounts: WorkflowAssignmentCountsTable;
  annotatorAssignmentCounts: AnnotatorAssignmentCountsTable;
  workflowRejectionCounts: WorkflowRejectionCountsTable;
  workflowStats: WorkflowStatsTable;
  workflowStatDeltas: WorkflowStatDeltasTable;
  workflowAnnotatorOpen: WorkflowAnnotatorOpenTable;
  annotationFleetHourly: AnnotationFleetHourlyTable;
  annotationFleetHourlyDeltas: AnnotationFleetHourlyTable;
}

export type Role = Selectable<RolesTable>;
export type LabelingConfig = Selectable<LabelingConfigsTable>;
export type Workflow = Selectable<WorkflowsTable>;
export type NewWorkflow = Insertable<WorkflowsTable>;
export type WorkflowUpdate = Updateable<WorkflowsTable>;
export type GoldTask = Selectable<GoldTasksTable>;
export type Annotator = Selectable<AnnotatorsTable>;
export type Assignment = Selectable<AssignmentsTable>;
export type AssignmentTask = Selectable<AssignmentTasksTable>;
export type WorkItem = Selectable<WorkItemsTable>;
export type Rejection = Selectable<RejectionsTable>;
export type Setting = Selectable<SettingsTable>;
