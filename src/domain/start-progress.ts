/**
 * An annotator's start, phase by phase, as the progress stream (GET /api/annotators/:id/progress)
 * and the console show it — in the manner of JupyterHub's spawn progress: each event carries a
 * percent, a message and `ready` / `failed`. Pure: built from the annotator row and the container
 * events of the current start generation (orchestrator/annotators-step.ts writes them).
 *
 * Phases in order: database → container → healthy → token → route, then `active`. The percent is
 * where the current phase begins on a scale weighted by how long phases usually take (Label
 * Studio's first boot, `healthy`, is most of a start): 0, 10, 35, 75, 90, then 100 when active.
 */

export const START_PHASES = ['database', 'container', 'healthy', 'token', 'route'] as const;
export type StartPhaseName = (typeof START_PHASES)[number];

/** Percent at which each phase begins. */
const PHASE_PERCENT: Record<StartPhaseName, number> = { database: 0, container: 10, healthy: 35, token: 75, route: 90 };

/** What each phase waits for, in words a lead understands. */
export const PHASE_LABELS: Record<StartPhaseName | 'active', string> = {
  database: 'Database and role',
  container: 'Container',
  healthy: 'Label Studio boots',
  token: 'API token reported',
  route: 'Route through Traefik',
  active: 'Ready',
};

export interface ProgressEventRow {
  id: number;
  eventType: string;
  toStatus: string | null;
  message: string | null;
  details: unknown;
  createdAt: Date;
}

export interface StartProgressInput {
  status: string;
  startPhase: string | null;
  statusReason: string | null;
  startGeneration: number;
  startRequestedAt: Date | null;
  /** The instance URL once the route answers (status active), else null. */
  url: string | null;
  /** Container events of this annotator since the current start was requested, oldest first. */
  events: readonly ProgressEventRow[];
}

export type PhaseState = 'done' | 'current' | 'pending' | 'failed';

export interface PhaseProgress {
  phase: StartPhaseName | 'active';
  label: string;
  state: PhaseState;
  /** When the phase began (ISO), null when it has not. */
  startedAt: string | null;
  /** What happened in the phase: the step that finished it, the wait, or the error. */
  message: string | null;
}

/** One event of the progress stream (`data:` of `event: progress`). */
export interface StartProgress {
  status: string;
  /** The phase under way (or `active`); null when no start is under way or done. */
  phase: StartPhaseName | 'active' | null;
  /** 0–100. */
  percent: number;
  message: string;
  /** The start has ended with the instance up: the stream ends after this event. */
  ready: boolean;
  /** The start has ended in `error`: the stream ends after this event. */
  failed: boolean;
  url: string | null;
  phases: PhaseProgress[];
}

interface PhaseDetails {
  phase?: unknown;
  previousPhase?: unknown;
  generation?: unknown;
}

const isPhase = (v: unknown): v is StartPhaseName => typeof v === 'string' && (START_PHASES as readonly string[]).includes(v);
const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/** The progress of the annotator's current (or last) start. */
export function startProgress(input: StartProgressInput): StartProgress {
  const started = new Map<StartPhaseName, Date>();
  const finished = new Map<StartPhaseName, string | null>();
  if (input.startRequestedAt) started.set('database', input.startRequestedAt);
  let reached: StartPhaseName | null = input.startRequestedAt ? 'database' : null;
  let activeAt: Date | null = null;
  for (const e of input.events) {
    const d = (e.details ?? {}) as PhaseDetails;
    if (d.generation !== undefined && d.generation !== input.startGeneration) continue;
    if (e.eventType === 'start_progress' && isPhase(d.phase)) {
      if (isPhase(d.previousPhase) && d.previousPhase !== d.phase) finished.set(d.previousPhase, e.message);
      if (!started.has(d.phase) || d.previousPhase !== d.phase) started.set(d.phase, e.createdAt);
      reached = d.phase;
    } else if (e.eventType === 'status_change' && e.toStatus === 'active') {
      activeAt = e.createdAt;
      if (reached) finished.set(reached, finished.get(reached) ?? e.message);
    }
  }

  const status = input.status;
  const current: StartPhaseName | null = status === 'starting' ? (isPhase(input.startPhase) ? input.startPhase : reached ?? 'database') : null;
  const failedPhase: StartPhaseName | null = status === 'error' && input.startRequestedAt ? (reached ?? 'database') : null;
  const ready = status === 'active';
  const failed = status === 'error';

  const phases: PhaseProgress[] = START_PHASES.map((phase, i) => {
    let state: PhaseState = 'pending';
    let message: string | null = finished.get(phase) ?? null;
    if (ready) state = 'done';
    else if (current !== null) {
      const at = START_PHASES.indexOf(current);
      state = i < at ? 'done' : i === at ? 'current' : 'pending';
      if (state === 'current') message = input.statusReason;
    } else if (failedPhase !== null) {
      const at = START_PHASES.indexOf(failedPhase);
      state = i < at ? 'done' : i === at ? 'failed' : 'pending';
      if (state === 'failed') message = input.statusReason;
    }
    if (state === 'pending') message = null;
    return { phase, label: PHASE_LABELS[phase], state, startedAt: state === 'pending' ? null : iso(started.get(phase)), message };
  });
  phases.push({
    phase: 'active',
    label: PHASE_LABELS.active,
    state: ready ? 'done' : 'pending',
    startedAt: ready ? iso(activeAt) : null,
    message: ready ? (input.url ? `Label Studio is up at ${input.url}` : input.statusReason) : null,
  });

  let percent = 0;
  let phase: StartProgress['phase'] = null;
  let message: string;
  if (ready) {
    percent = 100;
    phase = 'active';
    message = input.url ? `Label Studio is up at ${input.url}` : (input.statusReason ?? 'active');
  } else if (current !== null) {
    percent = PHASE_PERCENT[current];
    phase = current;
    message = input.statusReason ?? `starting: ${current}`;
  } else if (failedPhase !== null) {
    percent = PHASE_PERCENT[failedPhase];
    phase = failedPhase;
    message = input.statusReason ?? 'the start failed';
  } else {
    message = notStartingMessage(status, input.statusReason);
  }
  return { status, phase, percent, message, ready, failed, url: ready ? input.url : null, phases };
}

function notStartingMessage(status: string, reason: string | null): string {
  switch (status) {
    case 'created':
      return 'Not started yet';
    case 'stopping':
      return reason ?? 'Stopping';
    case 'stopped':
      return reason ? `Stopped (${reason})` : 'Stopped';
    case 'deleted':
      return 'Deleted';
    default:
      return reason ?? status;
  }
}

/** Whether two progress snapshots would look the same to a viewer (the stream sends only changes). */
export function sameProgress(a: StartProgress, b: StartProgress): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
