// Known tendril bugs the fuzzer keeps finding, so a campaign can tell "the
// bug we reported" from "something new". A finding that matches one of these
// is still counted and printed (under "known issues"), just not as a new
// failure. When a bug is fixed, its matcher stops firing; delete the entry
// then. Each entry names the reproduction, so nothing here hides a problem.

export interface KnownIssue {
  id: string;
  title: string;
  repro: string;
}

/** Empty: the three bugs the fuzzer first found (a FIFO hang with --block-ro, control
 *  characters echoed into one-line errors, an unwritable gen-manifest output reported as
 *  an internal error) are fixed, and their regression tests are in tests/fuzz.test.ts. */
export const KNOWN_ISSUES: Record<string, KnownIssue> = {};
