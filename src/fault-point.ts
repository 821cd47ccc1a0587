/**
 * Named fault points for the chaos suite (test/chaos): a real `kill -9` at a deterministic line.
 * With FLEET_FAULT_POINT=<name> in the environment, the process sends itself SIGKILL the first
 * time the flow reaches `faultPoint('<name>')` — nothing after that line runs, no handler, no
 * flush, exactly as when an operator or the OOM killer ends it. Unset (always, outside the chaos
 * suite): every call is a comparison with undefined and nothing else.
 *
 * Read once, from the environment directly rather than src/config.ts, on purpose: it is a test
 * hook, not a setting, and it must not be settable from a config file or the settings API. The
 * names in use are listed in README "Tests and the test environment" (fault suite).
 */
const ARMED = process.env.FLEET_FAULT_POINT || undefined;

/** Kills this process with SIGKILL when `name` is the armed fault point; otherwise does nothing. */
export function faultPoint(name: string): void {
  if (ARMED !== undefined && ARMED === name) process.kill(process.pid, 'SIGKILL');
}
