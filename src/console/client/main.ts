/**
 * The console's script (bundled by esbuild from src/console/client/, see src/console/assets.ts).
 * Pages work as server-rendered HTML; this adds: forms and buttons that call the API, local times,
 * charts, live regions and start progress, selection, sign-out and the session's end.
 */
import { initActions, watchSession } from './actions.ts';
import { enhance } from './enhance.ts';
import { initForms } from './forms.ts';
import { followProgress, initLive } from './live.ts';
import { initPages } from './pages.ts';
import { initSelection } from './selection.ts';
import { keepRelativeTimesFresh } from './times.ts';

initForms();
initPages();
initActions();
initSelection();
enhance(document);
keepRelativeTimesFresh();
initLive();
followProgress();
watchSession();
