import { EnvironmentError } from '../loader/errors.js';

/** The syscall policy could not be compiled into a seccomp program. */
export class FilterError extends EnvironmentError {}
