import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The published API 2.1.0 (reference material, not in the repository): beside the repository at
 * ../shared/reference, as in CI, or wherever OPENDIP_REFERENCE says (a worktree elsewhere). Tests that
 * need it skip when it is absent.
 */
export const REFERENCE = process.env.OPENDIP_REFERENCE ?? fileURLToPath(new URL('../../../shared/reference/dip-api-2.1.0', import.meta.url));
export const HAVE_REFERENCE = existsSync(REFERENCE);
